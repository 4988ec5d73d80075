//! Result codes, the thread-local last error message, and the panic boundary that wraps
//! every exported function.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// What a fallible function reports. `MESH_RESULT_OK` is zero, so `if (rc)` tests for
/// failure; every other code comes with a message from `mesh_last_error_message()`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum mesh_result {
    /// Success.
    Ok = 0,
    /// A required pointer argument was NULL.
    NullParameter = 1,
    /// A string argument was not valid UTF-8.
    InvalidUtf8 = 2,
    /// An argument was out of range (a port outside 0..65535, a rate outside [0, 1], ...).
    InvalidArgument = 3,
    /// The configuration was rejected by `mesh_node_new`; the message names the field.
    InvalidConfig = 4,
    /// A JSON text could not be parsed into a value.
    InvalidJson = 5,
    /// The key is missing or deleted.
    NotFound = 6,
    /// The key holds a value of another type than the one asked for.
    TypeMismatch = 7,
    /// The key is longer than the configured `max_key_len`.
    KeyTooLong = 8,
    /// The value is larger than the configured `max_value_size`.
    ValueTooLarge = 9,
    /// The UDP socket could not be bound (for example, the port is in use).
    Bind = 10,
    /// A host name could not be resolved to an IP address.
    Resolve = 11,
    /// The node was stopped and cannot be started again; create a new node.
    Stopped = 12,
    /// An operating system I/O error.
    Io = 13,
    /// An error this version of the C API has no code for; see the message.
    Internal = 14,
    /// A bug inside the library was caught before it crossed the C boundary. The object
    /// involved may be in an inconsistent state.
    Panic = 15,
    /// The node's store (`mesh_config_set_data_dir`) cannot be used: in use by another
    /// node, damaged (left as it is), not permitted, or full. The message names the path.
    Storage = 16,
    /// No alive peer has the node id a message was sent to.
    PeerNotFound = 17,
    /// The message is larger than the configured `max_value_size`.
    MessageTooLarge = 18,
    /// Too many messages wait to be sent to that peer; retry later.
    QueueFull = 19,
}

impl mesh_result {
    const ALL: [mesh_result; 20] = [
        mesh_result::Ok,
        mesh_result::NullParameter,
        mesh_result::InvalidUtf8,
        mesh_result::InvalidArgument,
        mesh_result::InvalidConfig,
        mesh_result::InvalidJson,
        mesh_result::NotFound,
        mesh_result::TypeMismatch,
        mesh_result::KeyTooLong,
        mesh_result::ValueTooLarge,
        mesh_result::Bind,
        mesh_result::Resolve,
        mesh_result::Stopped,
        mesh_result::Io,
        mesh_result::Internal,
        mesh_result::Panic,
        mesh_result::Storage,
        mesh_result::PeerNotFound,
        mesh_result::MessageTooLarge,
        mesh_result::QueueFull,
    ];

    /// A static, NUL-terminated description.
    fn description(self) -> &'static str {
        match self {
            mesh_result::Ok => "success\0",
            mesh_result::NullParameter => "a required pointer argument was NULL\0",
            mesh_result::InvalidUtf8 => "a string argument is not valid UTF-8\0",
            mesh_result::InvalidArgument => "an argument is out of range\0",
            mesh_result::InvalidConfig => "invalid configuration\0",
            mesh_result::InvalidJson => "invalid JSON value\0",
            mesh_result::NotFound => "key not found\0",
            mesh_result::TypeMismatch => "the value has another type\0",
            mesh_result::KeyTooLong => "key too long\0",
            mesh_result::ValueTooLarge => "value too large\0",
            mesh_result::Bind => "cannot bind the UDP socket\0",
            mesh_result::Resolve => "cannot resolve the host name\0",
            mesh_result::Stopped => "the node was stopped\0",
            mesh_result::Io => "I/O error\0",
            mesh_result::Internal => "internal error\0",
            mesh_result::Panic => "internal panic caught at the C boundary\0",
            mesh_result::Storage => "the node's store cannot be used\0",
            mesh_result::PeerNotFound => "no alive peer with that node id\0",
            mesh_result::MessageTooLarge => "message too large\0",
            mesh_result::QueueFull => "send queue full; retry later\0",
        }
    }
}

/// A failure on its way to the C caller: a code and the message stored for
/// `mesh_last_error_message()`.
#[derive(Debug)]
pub(crate) struct FfiError {
    pub(crate) code: mesh_result,
    pub(crate) message: String,
}

impl FfiError {
    pub(crate) fn new(code: mesh_result, message: impl Into<String>) -> FfiError {
        FfiError {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn null(param: &str) -> FfiError {
        FfiError::new(
            mesh_result::NullParameter,
            format!("`{param}` must not be NULL"),
        )
    }

    pub(crate) fn invalid(message: impl Into<String>) -> FfiError {
        FfiError::new(mesh_result::InvalidArgument, message)
    }
}

impl From<mesh_core::Error> for FfiError {
    fn from(e: mesh_core::Error) -> FfiError {
        use mesh_core::Error as E;
        let code = match &e {
            E::Config(_) => mesh_result::InvalidConfig,
            E::Bind { .. } => mesh_result::Bind,
            E::Resolve { .. } => mesh_result::Resolve,
            E::KeyTooLong { .. } => mesh_result::KeyTooLong,
            E::ValueTooLarge { .. } => mesh_result::ValueTooLarge,
            E::ValueTooDeep { .. } => mesh_result::InvalidArgument,
            E::Stopped => mesh_result::Stopped,
            E::Io(_) => mesh_result::Io,
            E::Storage { .. } => mesh_result::Storage,
            E::PeerNotFound { .. } => mesh_result::PeerNotFound,
            E::MessageTooLarge { .. } => mesh_result::MessageTooLarge,
            E::QueueFull { .. } => mesh_result::QueueFull,
            E::Key(k) => return k.clone().into(),
            _ => mesh_result::Internal,
        };
        FfiError::new(code, e.to_string())
    }
}

impl From<mesh_core::ConfigError> for FfiError {
    fn from(e: mesh_core::ConfigError) -> FfiError {
        FfiError::new(mesh_result::InvalidArgument, e.to_string())
    }
}

pub(crate) type FfiResult<T> = Result<T, FfiError>;

thread_local! {
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

fn set_last_error(message: &str) {
    // A message cannot carry a NUL into C; cut it there rather than lose it all.
    let bytes = message.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let text = CString::new(&bytes[..end]).unwrap_or_default();
    LAST_ERROR.with(|slot| *slot.borrow_mut() = Some(text));
}

fn clear_last_error() {
    LAST_ERROR.with(|slot| *slot.borrow_mut() = None);
}

/// How the value computed by an exported function's body reaches C, and what the
/// function returns when the body panicked.
pub(crate) trait FfiReturn {
    type Output;
    fn into_ffi(self) -> Self::Output;
    fn panicked() -> Self::Output;
}

impl FfiReturn for FfiResult<()> {
    type Output = mesh_result;
    fn into_ffi(self) -> mesh_result {
        match self {
            Ok(()) => {
                clear_last_error();
                mesh_result::Ok
            }
            Err(e) => {
                set_last_error(&e.message);
                e.code
            }
        }
    }
    fn panicked() -> mesh_result {
        mesh_result::Panic
    }
}

/// Bodies returning plain data pass it through and answer a panic with a neutral value.
macro_rules! plain_return {
    ($($t:ty => $panic_value:expr),* $(,)?) => {
        $(impl FfiReturn for $t {
            type Output = $t;
            fn into_ffi(self) -> $t { self }
            fn panicked() -> $t { $panic_value }
        })*
    };
}

plain_return! {
    () => (),
    bool => false,
    usize => 0,
    *const c_char => std::ptr::null(),
    crate::value::mesh_value_type => crate::value::mesh_value_type::Null,
}

impl<T> FfiReturn for *mut T {
    type Output = *mut T;
    fn into_ffi(self) -> *mut T {
        self
    }
    fn panicked() -> *mut T {
        std::ptr::null_mut()
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    let detail = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("unknown panic payload");
    format!("internal panic caught at the C boundary: {detail}")
}

/// Runs an exported function's body, turning a panic into the function's panic value so
/// that no unwind ever reaches C.
pub(crate) fn boundary<B: FfiReturn>(body: impl FnOnce() -> B) -> B::Output {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(value) => value.into_ffi(),
        Err(payload) => {
            set_last_error(&panic_message(payload.as_ref()));
            B::panicked()
        }
    }
}

/// Wraps the body of every `extern "C"` function (see [`boundary`]).
macro_rules! ffi_boundary {
    ($($body:tt)*) => {
        $crate::error::boundary(move || { $($body)* })
    };
}
pub(crate) use ffi_boundary;

/// A static, NUL-terminated English description of a result code. Never NULL: codes
/// this version does not know give "unknown result code". The string must not be freed.
#[no_mangle]
pub extern "C" fn mesh_result_str(code: c_int) -> *const c_char {
    ffi_boundary! {
        let text = mesh_result::ALL
            .iter()
            .find(|r| **r as c_int == code)
            .map_or("unknown result code\0", |r| r.description());
        text.as_ptr().cast::<c_char>()
    }
}

/// The message of the most recent failure on the calling thread: which argument was
/// NULL, which config field is wrong, what the operating system said.
///
/// Every function returning `mesh_result` sets it when it fails and clears it when it
/// succeeds; after a success this returns an empty string. Never NULL. The string is
/// owned by the library and stays valid until the calling thread's next call to a
/// function returning `mesh_result`; copy it to keep it. Must not be freed.
#[no_mangle]
pub extern "C" fn mesh_last_error_message() -> *const c_char {
    ffi_boundary! {
        LAST_ERROR.with(|slot| match slot.borrow().as_ref() {
            Some(text) => text.as_ptr(),
            None => c"".as_ptr(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: mesh_last_error_message never returns NULL and the text lives until
        // this thread's next fallible call.
        unsafe { CStr::from_ptr(mesh_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_becomes_a_result_code_with_a_message() {
        let code = boundary(|| -> FfiResult<()> { panic!("boom") });
        assert_eq!(code, mesh_result::Panic);
        assert!(last_error().contains("boom"), "{}", last_error());
        let ptr = boundary(|| -> *mut u8 { panic!("again") });
        assert!(ptr.is_null());
    }

    #[test]
    fn success_clears_the_message_and_failure_sets_it() {
        let code = boundary(|| -> FfiResult<()> { Err(FfiError::null("node")) });
        assert_eq!(code, mesh_result::NullParameter);
        assert_eq!(last_error(), "`node` must not be NULL");
        let code = boundary(|| -> FfiResult<()> { Ok(()) });
        assert_eq!(code, mesh_result::Ok);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn every_code_has_a_distinct_description() {
        let mut seen = std::collections::BTreeSet::new();
        for (index, code) in mesh_result::ALL.iter().enumerate() {
            assert_eq!(*code as usize, index, "codes are dense and in order");
            let desc = code.description();
            assert!(desc.ends_with('\0'));
            assert!(seen.insert(desc), "duplicate description {desc}");
        }
        // SAFETY: mesh_result_str always returns a static NUL-terminated string.
        let unknown = unsafe { CStr::from_ptr(mesh_result_str(9999)) };
        assert_eq!(unknown.to_str().unwrap(), "unknown result code");
    }
}
