//! Guest logs. The host captures, masks and caps them; they never reach the
//! operator unfiltered.

use crate::bindings::log::log;
use crate::bindings::types::LogLevel;

pub fn debug(message: &str) {
    log(LogLevel::Debug, message);
}

pub fn info(message: &str) {
    log(LogLevel::Info, message);
}

pub fn warn(message: &str) {
    log(LogLevel::Warn, message);
}

pub fn error(message: &str) {
    log(LogLevel::Error, message);
}
