//! Stamps the build with its git commit.
include!("../build/git_commit.rs");
