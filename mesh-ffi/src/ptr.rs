//! Every conversion between C pointers and Rust values. The rest of the crate goes
//! through these helpers, so the rules for NULL, UTF-8 and ownership live in one place.

use std::ffi::{c_char, c_int, CStr};

use crate::error::{mesh_result, FfiError, FfiResult};

/// Borrows the object behind a handle argument.
///
/// # Safety
/// `ptr` must be NULL or point to a live `T` that outlives `'a` and is not mutated
/// through another path meanwhile.
pub(crate) unsafe fn arg_ref<'a, T>(ptr: *const T, name: &str) -> FfiResult<&'a T> {
    // SAFETY: the caller guarantees that a non-NULL `ptr` points to a live `T`.
    unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::null(name))
}

/// Borrows the object behind a handle argument mutably.
///
/// # Safety
/// `ptr` must be NULL or point to a live `T` that nothing else accesses during `'a`.
pub(crate) unsafe fn arg_mut<'a, T>(ptr: *mut T, name: &str) -> FfiResult<&'a mut T> {
    // SAFETY: the caller guarantees exclusive access to a non-NULL `ptr`.
    unsafe { ptr.as_mut() }.ok_or_else(|| FfiError::null(name))
}

/// Reads a NUL-terminated UTF-8 string argument.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string that outlives `'a`.
pub(crate) unsafe fn arg_str<'a>(ptr: *const c_char, name: &str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's guarantee.
    let text = unsafe { CStr::from_ptr(ptr) };
    text.to_str().map_err(|e| {
        FfiError::new(
            mesh_result::InvalidUtf8,
            format!(
                "`{name}` is not valid UTF-8 (bad byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Reads a `{pointer, length}` byte buffer argument. A NULL pointer is accepted only with
/// a zero length.
///
/// # Safety
/// A non-NULL `ptr` must point to `len` readable bytes that outlive `'a`.
pub(crate) unsafe fn arg_bytes<'a>(ptr: *const u8, len: usize, name: &str) -> FfiResult<&'a [u8]> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(FfiError::null(name));
    }
    if len > isize::MAX as usize {
        return Err(FfiError::invalid(format!(
            "`{name}` length {len} is too large"
        )));
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`; the length fits isize.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// Checks a port argument passed as `int`, so that negative or too large values are
/// reported instead of being silently truncated to 16 bits.
pub(crate) fn arg_port(port: c_int, name: &str, allow_zero: bool) -> FfiResult<u16> {
    match u16::try_from(port) {
        Ok(0) if !allow_zero => Err(FfiError::invalid(format!(
            "`{name}` must be between 1 and 65535, got 0"
        ))),
        Ok(p) => Ok(p),
        Err(_) => Err(FfiError::invalid(format!(
            "`{name}` must be between {} and 65535, got {port}",
            u8::from(!allow_zero)
        ))),
    }
}

/// Writes a result through an out-parameter.
///
/// # Safety
/// `ptr` must be NULL or point to writable memory for a `T`.
pub(crate) unsafe fn write_out<T>(ptr: *mut T, name: &str, value: T) -> FfiResult<()> {
    if ptr.is_null() {
        return Err(FfiError::null(name));
    }
    // SAFETY: non-NULL and writable by the caller's guarantee; `write` does not read or
    // drop the uninitialized old contents.
    unsafe { ptr.write(value) };
    Ok(())
}

/// Writes through an optional out-parameter: NULL means the caller does not want it.
///
/// # Safety
/// `ptr` must be NULL or point to writable memory for a `T`.
pub(crate) unsafe fn write_opt<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL and writable by the caller's guarantee.
        unsafe { ptr.write(value) };
    }
}

/// Checks that an out-parameter can be written before any work is done, so a failing
/// call has no side effect.
pub(crate) fn require_out<T>(ptr: *mut T, name: &str) -> FfiResult<()> {
    if ptr.is_null() {
        Err(FfiError::null(name))
    } else {
        Ok(())
    }
}

/// Hands a Rust object to C as an owned handle.
pub(crate) fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Takes back and drops an owned handle; NULL is a no-op.
///
/// # Safety
/// `ptr` must be NULL or come from [`into_handle`] and not have been freed yet.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: `ptr` came from `Box::into_raw` and ownership returns to us exactly once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// Bytes in front of every string the library returns, holding its length so that
/// `mesh_string_free` can release strings containing NUL bytes.
const STRING_HEADER: usize = std::mem::size_of::<usize>();

/// Copies `text` into a NUL-terminated buffer that C owns and releases with
/// `mesh_string_free`.
pub(crate) fn owned_c_string(text: &[u8]) -> *mut c_char {
    let mut buffer = Vec::with_capacity(STRING_HEADER + text.len() + 1);
    buffer.extend_from_slice(&text.len().to_ne_bytes());
    buffer.extend_from_slice(text);
    buffer.push(0);
    let raw = Box::into_raw(buffer.into_boxed_slice()).cast::<u8>();
    // SAFETY: the allocation is STRING_HEADER + len + 1 bytes long, so the offset stays
    // inside it.
    unsafe { raw.add(STRING_HEADER) }.cast::<c_char>()
}

/// Releases a string made by [`owned_c_string`]; NULL is a no-op.
///
/// # Safety
/// `ptr` must be NULL or come from [`owned_c_string`] and not have been freed yet.
pub(crate) unsafe fn free_owned_c_string(ptr: *mut c_char) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` is STRING_HEADER bytes into an allocation made by owned_c_string.
    let base = unsafe { ptr.cast::<u8>().sub(STRING_HEADER) };
    // SAFETY: the header holds the text length, written by owned_c_string; the buffer is
    // byte-aligned, hence the unaligned read.
    let len = unsafe { base.cast::<usize>().read_unaligned() };
    let total = STRING_HEADER + len + 1;
    // SAFETY: `base` and `total` describe exactly the boxed slice owned_c_string leaked.
    drop(unsafe { Box::from_raw(std::ptr::slice_from_raw_parts_mut(base, total)) });
}
