//! The cache-miss path: a return address's [`Rule`] derived from the executable's call-frame
//! information (`.eh_frame_hdr` / `.eh_frame`, read with `gimli`) and the frame's LSDA (the
//! call-site table std's personality reads), or `None` when anything about it is unusual.
//!
//! Only addresses inside the main executable's code are considered; the executable is found
//! once, by `dl_iterate_phdr` (its first object).

use std::cell::Cell;
use std::ops::Range;
use std::sync::OnceLock;

use gimli::{
    BaseAddresses, CfaRule, EhFrame, EhFrameHdr, EndianSlice, NativeEndian, ParsedEhFrameHdr,
    Pointer, Register, RegisterRule, UnwindContext, UnwindSection, X86_64,
};
use parking_lot::Mutex;

use super::cache::{self, Action, Rule, SAME};

type Slice = EndianSlice<'static, NativeEndian>;

/// The main executable's unwind tables.
pub(crate) struct Image {
    /// Its executable segments, from the lowest start to the highest end.
    pub(crate) text: Range<usize>,
    hdr: ParsedEhFrameHdr<Slice>,
    eh_frame: EhFrame<Slice>,
    bases: BaseAddresses,
}

// SAFETY: the image only reads the executable's mapped, read-only sections.
unsafe impl Send for Image {}
// SAFETY: as above; nothing in it is written after `find`.
unsafe impl Sync for Image {}

/// The main executable's tables, found once; `None` when it has no `.eh_frame_hdr` with a
/// search table.
pub(crate) fn image() -> Option<&'static Image> {
    static IMAGE: OnceLock<Option<Image>> = OnceLock::new();
    IMAGE.get_or_init(find).as_ref()
}

/// The segments `dl_iterate_phdr` reported for the first object (the executable).
#[derive(Default)]
struct Found {
    text: Option<Range<usize>>,
    loads: Vec<Range<usize>>,
    hdr: Option<Range<usize>>,
}

fn find() -> Option<Image> {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `data` is the `Found` `find` passed; `info` and its headers are valid for
        // the duration of the callback (dl_iterate_phdr's contract).
        unsafe {
            let found = &mut *data.cast::<Found>();
            let info = &*info;
            let base = info.dlpi_addr as usize;
            for i in 0..usize::from(info.dlpi_phnum) {
                let ph = &*info.dlpi_phdr.add(i);
                let range = base + ph.p_vaddr as usize..base + (ph.p_vaddr + ph.p_memsz) as usize;
                match ph.p_type {
                    libc::PT_LOAD => {
                        if ph.p_flags & libc::PF_X != 0 {
                            let t = found.text.get_or_insert(range.clone());
                            t.start = t.start.min(range.start);
                            t.end = t.end.max(range.end);
                        }
                        found.loads.push(range);
                    }
                    libc::PT_GNU_EH_FRAME => found.hdr = Some(range),
                    _ => {}
                }
            }
        }
        1 // the first object only
    }
    let mut found = Found::default();
    // SAFETY: `first` matches the callback type and only touches `found`, which outlives the
    // call.
    unsafe { libc::dl_iterate_phdr(Some(first), (&mut found as *mut Found).cast()) };
    let text = found.text?;
    let hdr_range = found.hdr?;
    // SAFETY: PT_GNU_EH_FRAME lies in a loaded read-only segment that stays mapped for the
    // life of the process.
    let hdr_bytes: &'static [u8] =
        unsafe { std::slice::from_raw_parts(hdr_range.start as *const u8, hdr_range.len()) };
    let bases = BaseAddresses::default().set_eh_frame_hdr(hdr_range.start as u64);
    let hdr = EhFrameHdr::new(hdr_bytes, NativeEndian)
        .parse(&bases, 8)
        .ok()?;
    hdr.table()?;
    let eh_frame_at = match hdr.eh_frame_ptr() {
        Pointer::Direct(a) => a as usize,
        Pointer::Indirect(_) => return None,
    };
    // The section's length is not in the header: read up to the end of its segment.
    let seg = found.loads.iter().find(|r| r.contains(&eh_frame_at))?;
    // SAFETY: as above, the segment is mapped for the life of the process.
    let frame_bytes: &'static [u8] =
        unsafe { std::slice::from_raw_parts(eh_frame_at as *const u8, seg.end - eh_frame_at) };
    let bases = bases
        .set_eh_frame(eh_frame_at as u64)
        .set_text(text.start as u64);
    Some(Image {
        text,
        hdr,
        eh_frame: EhFrame::new(frame_bytes, NativeEndian),
        bases,
    })
}

/// The miss path's lock: its holder fills cache slots and owns the CFA program's scratch.
static FILL: Mutex<Option<Box<UnwindContext<usize>>>> = Mutex::new(None);

thread_local! {
    /// Set while this thread derives a rule, so that a panic inside the derivation (a bug)
    /// goes to libgcc instead of waiting on [`FILL`] for ever.
    static DERIVING: Cell<bool> = const { Cell::new(false) };
}

/// std's personality (`rust_eh_personality`), as [`set_personality`] found it.
static PERSONALITY: OnceLock<usize> = OnceLock::new();

/// Takes std's personality from the FDE of `probe`, a Rust function with a landing pad.
/// False when it has none.
pub(crate) fn set_personality(probe: usize) -> bool {
    let Some(img) = image() else { return false };
    let Ok(fde) = img.hdr.table().expect("checked in find").fde_for_address(
        &img.eh_frame,
        &img.bases,
        probe as u64,
        EhFrame::cie_from_offset,
    ) else {
        return false;
    };
    match fde.personality().map(deref) {
        Some(p) if p != 0 => PERSONALITY.set(p).is_ok() || PERSONALITY.get() == Some(&p),
        _ => false,
    }
}

fn deref(p: Pointer) -> usize {
    match p {
        Pointer::Direct(a) => a as usize,
        // SAFETY: an indirect pointer in the executable's CFI is the address of a GOT word,
        // mapped for the life of the process.
        Pointer::Indirect(a) => unsafe { *(a as *const usize) },
    }
}

/// The rule for the return address `ip`, from the cache or derived and cached; `None` when
/// the fast path cannot take this frame (or the cache has no room for it).
#[inline]
pub(crate) fn rule(ip: usize) -> Option<&'static Rule> {
    match cache::get(ip) {
        Some(r) => r.as_ref(),
        None => derive_and_cache(ip),
    }
}

#[cold]
#[inline(never)]
fn derive_and_cache(ip: usize) -> Option<&'static Rule> {
    let img = image()?;
    if ip == 0 || !img.text.contains(&(ip - 1)) {
        return None;
    }
    if DERIVING.with(|d| d.replace(true)) {
        return None;
    }
    let mut fill = FILL.lock();
    let ctx = fill.get_or_insert_with(|| Box::new(UnwindContext::new()));
    let rule = derive(img, ctx, ip);
    // SAFETY: FILL is held, and `ip` is not 0.
    unsafe { cache::put(ip, rule) };
    drop(fill);
    DERIVING.with(|d| d.set(false));
    cache::get(ip)?.as_ref()
}

const CALLEE_SAVED: [Register; 6] = [
    X86_64::RBX,
    X86_64::RBP,
    X86_64::R12,
    X86_64::R13,
    X86_64::R14,
    X86_64::R15,
];

fn derive(img: &Image, ctx: &mut UnwindContext<usize>, ip: usize) -> Option<Rule> {
    // The call instruction is before the return address: look up `ip - 1`, as libgcc does.
    let at = (ip - 1) as u64;
    let table = img.hdr.table()?;
    let fde = table
        .fde_for_address(&img.eh_frame, &img.bases, at, EhFrame::cie_from_offset)
        .ok()?;
    if fde.is_signal_trampoline() || fde.cie().return_address_register() != X86_64::RA {
        return None;
    }
    if let Some(p) = fde.personality() {
        if Some(&deref(p)) != PERSONALITY.get() {
            return None;
        }
    }
    let lsda = fde.lsda().map(deref);
    let func_start = fde.initial_address() as usize;
    let row = fde
        .unwind_info_for_address(&img.eh_frame, &img.bases, ctx, at)
        .ok()?;
    if row.saved_args_size() != 0 {
        return None;
    }
    let (cfa_rbp, cfa_off) = match *row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            let rbp = match register {
                X86_64::RSP => false,
                X86_64::RBP => true,
                _ => return None,
            };
            (rbp, i32::try_from(offset).ok()?)
        }
        CfaRule::Expression(_) => return None,
    };
    let mut saved = [SAME; 6];
    let mut ra_off = None;
    for (reg, how) in row.registers() {
        let slot = CALLEE_SAVED.iter().position(|r| r == reg);
        match (how, slot) {
            (RegisterRule::Undefined | RegisterRule::SameValue, _) if *reg != X86_64::RA => {}
            (RegisterRule::Offset(o), Some(i)) => saved[i] = i32::try_from(*o).ok()?,
            (RegisterRule::Offset(o), None) if *reg == X86_64::RA => {
                ra_off = Some(i32::try_from(*o).ok()?)
            }
            _ => return None,
        }
    }
    let (action, lpad) = match lsda {
        None | Some(0) => (Action::Continue, 0),
        // SAFETY: the FDE's LSDA pointer addresses the function's call-site table in the
        // executable's read-only data.
        Some(lsda) => unsafe { lsda_action(lsda, func_start, ip)? },
    };
    Some(Rule {
        cfa_rbp,
        cfa_off,
        ra_off: ra_off?,
        saved,
        action,
        lpad,
    })
}

const DW_EH_PE_OMIT: u8 = 0xff;

/// A cursor over an LSDA.
struct Reader(*const u8);

impl Reader {
    /// # Safety (all readers)
    /// The cursor stays inside the LSDA the caller vouched for.
    unsafe fn u8(&mut self) -> u8 {
        // SAFETY: the caller's contract.
        let b = unsafe { *self.0 };
        // SAFETY: as above; one past is at most the end.
        self.0 = unsafe { self.0.add(1) };
        b
    }

    unsafe fn uleb(&mut self) -> u64 {
        let (mut v, mut shift) = (0u64, 0u32);
        loop {
            // SAFETY: the caller's contract.
            let b = unsafe { self.u8() };
            if shift < 64 {
                v |= u64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                return v;
            }
        }
    }

    unsafe fn sleb(&mut self) -> i64 {
        let (mut v, mut shift) = (0i64, 0u32);
        loop {
            // SAFETY: the caller's contract.
            let b = unsafe { self.u8() };
            if shift < 64 {
                v |= i64::from(b & 0x7f) << shift;
            }
            shift += 7;
            if b & 0x80 == 0 {
                if shift < 64 && b & 0x40 != 0 {
                    v |= -1i64 << shift;
                }
                return v;
            }
        }
    }

    unsafe fn fixed<T: Copy>(&mut self) -> T {
        // SAFETY: the caller's contract; LSDA fields are unaligned.
        let v = unsafe { self.0.cast::<T>().read_unaligned() };
        // SAFETY: as above.
        self.0 = unsafe { self.0.add(std::mem::size_of::<T>()) };
        v
    }

    /// A call-site table field (an offset) in `encoding`, as std's `read_encoded_offset`.
    unsafe fn offset(&mut self, encoding: u8) -> Option<usize> {
        if encoding == DW_EH_PE_OMIT || encoding & 0xf0 != 0 {
            return None;
        }
        // SAFETY: the caller's contract.
        unsafe {
            Some(match encoding & 0x0f {
                0x00 => self.fixed::<usize>(),
                0x01 => self.uleb() as usize,
                0x02 => usize::from(self.fixed::<u16>()),
                0x03 => self.fixed::<u32>() as usize,
                0x04 => self.fixed::<u64>() as usize,
                0x09 => self.sleb() as usize,
                0x0a => self.fixed::<i16>() as usize,
                0x0b => self.fixed::<i32>() as usize,
                0x0c => self.fixed::<i64>() as usize,
                _ => return None,
            })
        }
    }
}

/// What std's personality does with a Rust panic in the function at `func_start` whose LSDA
/// is `lsda`, stopped at the return address `ip` (std's `find_eh_action`); `None` for what
/// the fast path hands to libgcc (a filter, a `nounwind` call, an unusual encoding).
///
/// # Safety
/// `lsda` is the LSDA of the function containing `ip - 1`.
unsafe fn lsda_action(lsda: usize, func_start: usize, ip: usize) -> Option<(Action, usize)> {
    let mut r = Reader(lsda as *const u8);
    // SAFETY: the reads below stay inside the header, the call-site table and the action
    // table, laid out as the caller's LSDA says.
    unsafe {
        if r.u8() != DW_EH_PE_OMIT {
            return None; // a landing-pad base of its own: LLVM does not emit one
        }
        if r.u8() != DW_EH_PE_OMIT {
            r.uleb(); // the type table's offset; Rust does not look at types
        }
        let cs_encoding = r.u8();
        let table_len = r.uleb() as usize;
        let actions = r.0.add(table_len);
        let ip = ip - 1;
        while r.0 < actions {
            let start = r.offset(cs_encoding)?;
            let len = r.offset(cs_encoding)?;
            let lpad = r.offset(cs_encoding)?;
            let action = r.uleb() as usize;
            if ip < func_start.wrapping_add(start) {
                break;
            }
            if ip < func_start.wrapping_add(start + len) {
                if lpad == 0 {
                    return Some((Action::Continue, 0));
                }
                let lpad = func_start.wrapping_add(lpad);
                if action == 0 {
                    return Some((Action::Cleanup, lpad));
                }
                let ttype = Reader(actions.add(action - 1)).sleb();
                return match ttype {
                    0 => Some((Action::Cleanup, lpad)),
                    t if t > 0 => Some((Action::Catch, lpad)),
                    _ => None,
                };
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsda_actions_as_std_reads_them() {
        // LPStart omitted, no type table, uleb128 call sites:
        //   [0x10, 0x18) -> pad 0x40, cleanup
        //   [0x20, 0x28) -> no pad
        //   [0x30, 0x38) -> pad 0x50, action record 1 (type filter 1: catch)
        //   [0x38, 0x3c) -> pad 0x60, action record 3 (type filter -1: filter)
        let lsda: [u8; 23] = [
            0xff, 0xff, 0x01, 16, //
            0x10, 0x08, 0x40, 0x00, //
            0x20, 0x08, 0x00, 0x00, //
            0x30, 0x08, 0x50, 0x01, //
            0x38, 0x04, 0x60, 0x03, //
            0x01, 0x00, 0x7f,
        ];
        let f = 0x1000;
        let at = |ret: usize| {
            // SAFETY: the table above is a complete LSDA.
            unsafe { lsda_action(lsda.as_ptr() as usize, f, f + ret) }
        };
        assert_eq!(at(0x11), Some((Action::Cleanup, f + 0x40)));
        assert_eq!(at(0x18), Some((Action::Cleanup, f + 0x40))); // ip - 1 = 0x17
        assert_eq!(at(0x19), None); // between entries: a nounwind call
        assert_eq!(at(0x25), Some((Action::Continue, 0)));
        assert_eq!(at(0x31), Some((Action::Catch, f + 0x50)));
        assert_eq!(at(0x39), None); // a filter goes to libgcc
        assert_eq!(at(0x100), None);
    }

    #[test]
    fn sleb_reads_negative_values() {
        let bytes = [0x7f, 0x80, 0x7f, 0x3f];
        let mut r = Reader(bytes.as_ptr());
        // SAFETY: the reads stay inside `bytes`.
        unsafe {
            assert_eq!(r.sleb(), -1);
            assert_eq!(r.sleb(), -128);
            assert_eq!(r.sleb(), 63);
        }
    }
}
