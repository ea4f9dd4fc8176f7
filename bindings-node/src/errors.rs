//! Core errors as JavaScript errors whose `code` is the core's stable code.

use napi::bindgen_prelude::*;

pub(crate) type CoreError = restore_core::Error;

/// The `code` of a JavaScript error: the core's stable error code.
pub struct Code(String);

impl AsRef<str> for Code {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<Status> for Code {
    fn from(s: Status) -> Self {
        Code(format!("{s:?}"))
    }
}

/// The message of a core error with its cause chain.
pub(crate) fn message(e: &CoreError) -> String {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        let part = s.to_string();
        if !msg.contains(&part) {
            msg.push_str(": ");
            msg.push_str(&part);
        }
        src = s.source();
    }
    msg
}

/// A core error as a napi error whose JS `code` is the core's code.
pub(crate) fn coded(e: CoreError) -> napi::Error<Code> {
    napi::Error::new(Code(e.code().to_string()), message(&e))
}

/// A core error as a JS `Error` (with `code`) for rejecting a promise.
pub(crate) fn js_error(env: &Env, e: CoreError) -> napi::Error {
    let err = JsError::from(coded(e)).into_unknown(*env);
    napi::Error::from(err)
}

pub(crate) fn invalid(path: &str, message: impl Into<String>) -> CoreError {
    CoreError::Invalid {
        path: path.into(),
        message: message.into(),
    }
}

pub(crate) fn parse_error(path: &str, message: impl Into<String>) -> CoreError {
    CoreError::Parse {
        path: path.into(),
        message: message.into(),
    }
}
