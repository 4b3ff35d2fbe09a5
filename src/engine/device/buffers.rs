//! Device memory as the engine holds it: `DevBuf` (an allocation, freed on drop), borrowed
//! `DevSlice` views that copies and GEMMs check the lengths of, and typed `DevPtr` kernel
//! parameters. Only the device layer (`Device::alloc`) makes a `DevBuf`.

use anyhow::{anyhow, bail, Context, Result};
use cudarc::driver::result as drv;
use std::marker::PhantomData;

/// A device allocation of `bytes` bytes, freed on drop. Only `Device::alloc` makes one (its fields
/// are private to the device layer, so no address that was not allocated can be freed); its memory
/// reaches copies and GEMMs only as a typed, bounds-checked `DevSlice`, and kernels as a typed
/// `DevPtr` at its start (`dptr`) or at a bounds-checked offset inside it (`dptr_at`).
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

    /// The first address, for the engine's own FFI calls (cuBLAS, cuBLASLt, device copies, the
    /// KV cache's tensor maps).
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
impl<T> std::fmt::Debug for DevPtr<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevPtr({:#x})", self.addr)
    }
}
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

    /// An address inside a live allocation holding elements of T. Private: outside this module a
    /// pointer is made only from a `DevBuf`, whose bounds `dptr_at` checks.
    fn from_addr(addr: u64) -> Self {
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

    /// Element `elem` of the buffer read as elements of T, as a kernel pointer parameter (a region
    /// inside one allocation, such as one layer's K cache); an error if that element does not lie
    /// wholly inside the allocation.
    pub fn dptr_at<T>(&self, elem: usize) -> Result<DevPtr<T>> {
        let size = std::mem::size_of::<T>().max(1);
        let byte = elem.checked_mul(size).ok_or_else(|| {
            anyhow!(
                "device buffer of {} bytes: element {elem} of {size} bytes overflows an offset",
                self.bytes
            )
        })?;
        self.dptr_at_byte(byte)
            .with_context(|| format!("element {elem} of {size} bytes"))
    }

    /// A kernel pointer to a T that starts `byte` bytes into the buffer (a region whose offset is
    /// counted in another element type, such as the attention items among the metadata's ints); an
    /// error if the T does not lie wholly inside the allocation or `byte` breaks T's alignment.
    pub fn dptr_at_byte<T>(&self, byte: usize) -> Result<DevPtr<T>> {
        let (size, align) = (std::mem::size_of::<T>(), std::mem::align_of::<T>());
        match byte.checked_add(size.max(1)) {
            Some(end) if end <= self.bytes && byte.is_multiple_of(align) => {
                Ok(DevPtr::from_addr(self.ptr + byte as u64))
            }
            _ if !byte.is_multiple_of(align) => bail!(
                "device buffer of {} bytes: byte offset {byte} is not a multiple of the {align}-byte alignment",
                self.bytes
            ),
            _ => bail!(
                "device buffer of {} bytes: {size} bytes at byte offset {byte} run past its end",
                self.bytes
            ),
        }
    }
}

/// A buffer of `bytes` bytes at a made-up address that owns nothing, for tests that only compute
/// kernel pointers from it (no GPU). `ManuallyDrop`, so that Drop never frees the address, not
/// even when an assertion unwinds.
#[cfg(test)]
pub(crate) fn fake_buf(bytes: usize) -> std::mem::ManuallyDrop<DevBuf> {
    fake_buf_at(0x7f00_0000_0000, bytes)
}

/// `fake_buf` at a made-up address of the test's choosing (to tell buffers apart by address).
#[cfg(test)]
pub(crate) fn fake_buf_at(ptr: u64, bytes: usize) -> std::mem::ManuallyDrop<DevBuf> {
    std::mem::ManuallyDrop::new(DevBuf { ptr, bytes })
}

impl Drop for DevBuf {
    fn drop(&mut self) {
        if self.ptr != 0 {
            // SAFETY: ptr came from malloc_sync and is freed once.
            let _ = unsafe { drv::free_sync(self.ptr) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on a fake buffer of `bytes` bytes (`fake_buf`).
    fn checked(bytes: usize, f: impl FnOnce(&DevBuf)) {
        f(&fake_buf(bytes))
    }

    #[test]
    fn dptr_at_points_at_the_element_inside_the_allocation() {
        checked(64, |b| {
            assert_eq!(b.dptr_at::<u16>(0).unwrap().addr(), b.ptr);
            assert_eq!(b.dptr_at::<u16>(5).unwrap().addr(), b.ptr + 10);
            // The last whole element.
            assert_eq!(b.dptr_at::<u16>(31).unwrap().addr(), b.ptr + 62);
            assert_eq!(b.dptr_at::<i32>(15).unwrap().addr(), b.ptr + 60);
        });
    }

    #[test]
    fn dptr_at_rejects_an_element_past_the_end() {
        checked(64, |b| {
            let e = format!("{:#}", b.dptr_at::<u16>(32).unwrap_err());
            assert!(e.contains("element 32 of 2 bytes"), "{e}");
            assert!(e.contains("device buffer of 64 bytes"), "{e}");
            assert!(e.contains("byte offset 64"), "{e}");
            assert!(b.dptr_at::<i32>(16).is_err());
            // Each of an element's bytes must be inside: a u64 at byte 60 would end at 68.
            assert!(b.dptr_at_byte::<u64>(56).is_ok());
            assert!(b.dptr_at_byte::<[u8; 8]>(60).is_err());
            let e = format!("{:#}", b.dptr_at::<u64>(usize::MAX / 4).unwrap_err());
            assert!(e.contains("overflows"), "{e}");
            assert!(b.dptr_at_byte::<u16>(usize::MAX).is_err());
        });
        // A buffer of no bytes (the placeholder) has no element to point at.
        assert!(DevBuf::empty().dptr_at::<u16>(0).is_err());
    }

    #[test]
    fn dptr_at_byte_keeps_the_alignment() {
        checked(64, |b| {
            assert_eq!(b.dptr_at_byte::<[i32; 6]>(12).unwrap().addr(), b.ptr + 12);
            let e = format!("{:#}", b.dptr_at_byte::<i32>(6).unwrap_err());
            assert!(e.contains("byte offset 6"), "{e}");
            assert!(e.contains("4-byte alignment"), "{e}");
            assert_eq!(b.dptr_at_byte::<u8>(63).unwrap().addr(), b.ptr + 63);
        });
    }
}
