//! placeholder
use rocksdb as _;
