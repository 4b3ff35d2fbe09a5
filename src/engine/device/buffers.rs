//! Device memory as the engine holds it: `DevBuf` (an allocation, freed on drop), borrowed
//! `DevSlice` views that copies and GEMMs check the lengths of, and typed `DevPtr` kernel
//! parameters. Only the device layer (`Device::alloc`) makes a `DevBuf`.

use anyhow::{bail, Result};
use cudarc::driver::result as drv;
use std::marker::PhantomData;

/// A device allocation of `bytes` bytes, freed on drop. Only `Device::alloc` makes one (its fields
/// are private to the device layer, so no address that was not allocated can be freed); its memory reaches copies and
/// GEMMs only as a typed, bounds-checked `DevSlice`, and kernels through `ptr` in a launch.
pub struct DevBuf {
    pub(super) ptr: u64,
    pub(super) bytes: usize,
}

impl DevBuf {
    /// A buffer of no bytes (address 0, a null kernel argument): a placeholder before allocation.
    pub fn empty() -> DevBuf {
        DevBuf { ptr: 0, bytes: 0 }
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The address, for kernel arguments (`Arg::P`) and pointer arithmetic inside a launch's
    /// argument list; the launch is where the kernel's use of it is checked (the selftest).
    pub fn ptr(&self) -> u64 {
        self.ptr
    }

    /// The whole buffer as `bytes / size_of::<T>()` elements of T.
    pub fn view<T: Copy>(&self) -> DevSlice<'_, T> {
        DevSlice {
            addr: self.ptr,
            len: self.bytes / std::mem::size_of::<T>().max(1),
            _buf: PhantomData,
        }
    }

    /// `n` elements of T from element `at`; an error if they run past the allocation.
    pub fn slice<T: Copy>(&self, at: usize, n: usize) -> Result<DevSlice<'_, T>> {
        self.view().slice(at, n)
    }
}

/// `len` elements of T in a live device allocation, borrowed from its `DevBuf` (so the memory
/// outlives the view). Copies and GEMMs take these and check their lengths, so a device address
/// never crosses a safe function as a bare integer.
pub struct DevSlice<'a, T> {
    addr: u64,
    len: usize,
    _buf: PhantomData<&'a [T]>,
}

impl<T> Clone for DevSlice<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DevSlice<'_, T> {}

impl<'a, T: Copy> DevSlice<'a, T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Elements `at .. at + n` of this view; an error if they run past its end.
    pub fn slice(self, at: usize, n: usize) -> Result<DevSlice<'a, T>> {
        match at.checked_add(n) {
            Some(end) if end <= self.len => Ok(DevSlice {
                addr: self.addr + (at * std::mem::size_of::<T>()) as u64,
                len: n,
                _buf: PhantomData,
            }),
            _ => bail!(
                "device view of {} elements: elements {at}..{at}+{n} out of range",
                self.len
            ),
        }
    }

    /// The first address, for the device layer's own FFI calls (cuBLAS, cuBLASLt).
    pub(crate) fn addr(&self) -> u64 {
        self.addr
    }
}

/// A device address passed as a kernel's `T*` parameter (`launches.rs`): typed, so that a launch's
/// argument struct says which buffer of which element type each parameter takes. It carries no
/// length; the `unsafe` launch is where the caller states that it covers what the kernel touches.
pub struct DevPtr<T> {
    addr: u64,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for DevPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DevPtr<T> {}
impl<T> Default for DevPtr<T> {
    fn default() -> Self {
        Self::null()
    }
}

impl<T> DevPtr<T> {
    /// The null pointer (an absent optional input, as the kernels test it).
    pub const fn null() -> Self {
        DevPtr {
            addr: 0,
            _t: PhantomData,
        }
    }

    /// An address inside a live allocation holding elements of T (a buffer's start plus a byte
    /// offset computed by the caller, such as one layer's part of the KV cache).
    pub fn from_addr(addr: u64) -> Self {
        DevPtr {
            addr,
            _t: PhantomData,
        }
    }

    pub fn addr(self) -> u64 {
        self.addr
    }
}

impl DevBuf {
    /// The buffer's start as a kernel pointer parameter of element type T.
    pub fn dptr<T>(&self) -> DevPtr<T> {
        DevPtr::from_addr(self.ptr)
    }
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        if self.ptr != 0 {
            // SAFETY: ptr came from malloc_sync and is freed once.
            let _ = unsafe { drv::free_sync(self.ptr) };
        }
    }
}
