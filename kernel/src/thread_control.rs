//! ThreadControl (spec 5.3): creating, activating, modifying and deleting threads, and the
//! association of interrupt threads with their handlers (5.3.1).

use crate::decode::{Out, ThreadControlArgs};
use abi::error::{IpcErrorCode, SyscallError};
use abi::thread_id::ThreadId;
use abi::utcb;

use crate::arch::context;
use crate::arch::trap::TRAP_FRAME_SIZE;
use crate::kernel_state::Kernel;
use crate::schedule;
use crate::space;
use crate::thread::{self, Tcb};

/// Gives an inactive thread its UTCB and pager and puts it into the start-up wait (spec 6.1).
pub fn activate(
    k: &mut Kernel,
    t: &mut Tcb,
    utcb_location: u64,
    pager: ThreadId,
) -> Result<(), SyscallError> {
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    let s = unsafe { t.space() };
    if !s.valid_utcb_location(utcb_location) {
        return Err(SyscallError::UtcbArea);
    }
    let kva = s.utcb_memory(utcb_location)?;
    if k.utcbs.insert(t.space as u64, utcb_location).is_err() {
        return Err(SyscallError::NoMem);
    }
    t.utcb_location = utcb_location;
    t.utcb = kva;
    // SAFETY: the 1 KiB UTCB block is kernel memory of this space, now owned by `t`.
    unsafe { core::ptr::write_bytes(kva as *mut u8, 0, 1024) };
    // %gs:0 yields the UTCB pointer: the block's first (kernel-private) word holds it.
    // SAFETY: as above.
    unsafe { *(kva as *mut u64) = utcb_location + 0x200 };
    t.set_utcb_word(utcb::MY_GLOBAL_ID, t.id.raw());
    t.set_utcb_word(utcb::PAGER, pager.raw());
    t.set_utcb_word(utcb::PROCESSOR_NO, 0);
    t.set_utcb_word(utcb::EXCEPTION_HANDLER, 0);
    t.set_utcb_word(utcb::WORD_SIZE_MASK, u64::MAX);
    // Start-up wait: a closed receive from the pager; the first switch runs `thread_startup`.
    t.ksp = context::prepare_stack(
        t.kstack_top() - TRAP_FRAME_SIZE as u64,
        crate::ipc::thread_startup,
        0,
    );
    crate::ipc::enter_receive(t, pager, None);
    t.startup = true;
    Ok(())
}

pub fn sys_thread_control(k: &mut Kernel, a: ThreadControlArgs) -> Result<Out, SyscallError> {
    control(k, a).map(|()| Out::Rax(1))
}

fn control(k: &mut Kernel, a: ThreadControlArgs) -> Result<(), SyscallError> {
    let ThreadControlArgs {
        dest,
        space: space_spec,
        scheduler,
        pager,
        utcb_location,
    } = a;
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    // SAFETY: a thread's space outlives it; the only reference to it in use.
    if !(unsafe { cur.space() }).privileged {
        return Err(SyscallError::NoPrivilege);
    }
    if !dest.is_global() {
        return Err(SyscallError::InvalidSpace);
    }
    let no = dest.number();
    if no < thread::SYSTEM_BASE {
        return crate::interrupt::associate(k, dest, pager);
    }
    if no < thread::USER_BASE || no as usize >= thread::MAX_THREADS {
        return Err(SyscallError::InvalidThread);
    }
    // Resolve the other ids (local ids name threads of the caller's space).
    let resolve = |id: ThreadId| {
        if id.is_local() {
            // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
            (unsafe { thread::resolve(cur, id) })
                .map(|t| t.id)
                .unwrap_or(ThreadId::from_raw(u64::MAX - 1))
        } else {
            id
        }
    };
    let space_spec = resolve(space_spec);
    let scheduler = resolve(scheduler);
    let pager = resolve(pager);

    if space_spec.is_nil() {
        return delete(k, dest);
    }
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    match unsafe { thread::lookup_number(no) } {
        Some(t) => modify(k, t, dest, space_spec, scheduler, pager, utcb_location),
        None => create(k, dest, space_spec, scheduler, pager, utcb_location),
    }
}

fn delete(k: &mut Kernel, dest: ThreadId) -> Result<(), SyscallError> {
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let cur = unsafe { thread::current() };
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let Some(t) = (unsafe { thread::lookup_global(dest) }) else {
        // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
        return if (unsafe { thread::lookup_number(dest.number()) }).is_some() {
            Err(SyscallError::InvalidThread)
        } else {
            Ok(())
        };
    };
    if core::ptr::eq(t, cur) {
        return Err(SyscallError::InvalidThread);
    }
    if t.id.number() == thread::SIGMA0_NO || t.id.number() == thread::ROOT_NO {
        // The root servers stay (their spaces are the privileged ones).
        return Err(SyscallError::InvalidThread);
    }
    crate::ipc::unlink_deleted(k, t);
    crate::interrupt::handler_deleted(k, t.id);
    schedule::dequeue(k, t);
    thread::destroy(k, t);
    Ok(())
}

fn create(
    k: &mut Kernel,
    dest: ThreadId,
    space_spec: ThreadId,
    scheduler: ThreadId,
    pager: ThreadId,
    utcb_location: u64,
) -> Result<(), SyscallError> {
    if scheduler.is_nil() {
        return Err(SyscallError::InvalidThread);
    }
    let new_space = space_spec == dest;
    let space = if new_space {
        None
    } else {
        Some(
            // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
            (unsafe { thread::lookup_global(space_spec) })
                .filter(|t| t.id.number() >= thread::USER_BASE)
                .ok_or(SyscallError::InvalidSpace)?
                .space,
        )
    };
    if !pager.is_nil() {
        // Created active: the space must be initialised and the UTCB location valid.
        let Some(sp) = space else {
            return Err(SyscallError::InvalidSpace);
        };
        // SAFETY: a live thread's space.
        let s = unsafe { &*sp };
        if !s.initialised {
            return Err(SyscallError::InvalidSpace);
        }
        if utcb_location == u64::MAX
            || !s.valid_utcb_location(utcb_location)
            || utcb_taken(k, sp, utcb_location)
        {
            return Err(SyscallError::UtcbArea);
        }
    }
    let space = match space {
        Some(s) => s,
        None => space::create().ok_or(SyscallError::NoMem)?,
    };
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let Some(t) = (unsafe { thread::create(dest, space, scheduler) }) else {
        if new_space {
            // SAFETY: the space was just created and has no threads.
            let s = unsafe { &mut *space };
            s.threads = 1;
            space::release(s);
        }
        return Err(SyscallError::NoMem);
    };
    if utcb_location != u64::MAX {
        t.utcb_location = utcb_location;
    }
    if !pager.is_nil()
        && let Err(e) = activate(k, t, utcb_location, pager)
    {
        thread::destroy(k, t);
        return Err(e);
    }
    Ok(())
}

fn utcb_taken(k: &Kernel, space: *mut space::Space, loc: u64) -> bool {
    k.utcbs.contains(space as u64, loc)
}

/// An activated thread gives its UTCB location back (deletion).
pub fn utcb_released(k: &mut Kernel, t: &Tcb) {
    if t.is_activated() {
        k.utcbs.remove(t.space as u64, t.utcb_location);
    }
}

fn modify(
    k: &mut Kernel,
    t: &mut Tcb,
    dest: ThreadId,
    space_spec: ThreadId,
    scheduler: ThreadId,
    pager: ThreadId,
    utcb_location: u64,
) -> Result<(), SyscallError> {
    if t.id.number() < thread::USER_BASE {
        return Err(SyscallError::InvalidThread);
    }
    // SAFETY: the only reference in use to this TCB; not held across a deletion or a blocking copy.
    let target = (unsafe { thread::lookup_global(space_spec) })
        .filter(|t| t.id.number() >= thread::USER_BASE)
        .ok_or(SyscallError::InvalidSpace)?;
    let target_space = target.space;
    if utcb_location != u64::MAX {
        if t.is_activated() {
            return Err(SyscallError::UtcbArea);
        }
        // SAFETY: a live thread's space.
        let s = unsafe { &*target_space };
        if s.initialised
            && (!s.valid_utcb_location(utcb_location) || utcb_taken(k, target_space, utcb_location))
        {
            return Err(SyscallError::UtcbArea);
        }
    }
    if target_space != t.space {
        if t.is_activated() {
            // Migrating an active thread would move its UTCB; not supported (docs/decisions).
            return Err(SyscallError::UtcbArea);
        }
        // SAFETY: both spaces are live.
        unsafe { (*target_space).threads += 1 };
        let old = t.space;
        t.space = target_space;
        // SAFETY: the old space lost a thread.
        space::release(unsafe { &mut *old });
    }
    if utcb_location != u64::MAX {
        t.utcb_location = utcb_location;
    }
    if !pager.is_nil() {
        if !t.is_activated() {
            // SAFETY: a thread's space outlives it; the only reference to it in use.
            if !(unsafe { t.space() }).initialised {
                return Err(SyscallError::InvalidSpace);
            }
            activate(k, t, t.utcb_location, pager)?;
        } else {
            t.set_utcb_word(utcb::PAGER, pager.raw());
        }
    }
    if !scheduler.is_nil() {
        t.scheduler = scheduler;
    }
    if dest != t.id {
        // Version change: the thread gets a new global id.
        crate::ipc::cancel(k, t, true, true, IpcErrorCode::Canceled);
        t.id = dest;
        if t.is_activated() {
            t.set_utcb_word(utcb::MY_GLOBAL_ID, dest.raw());
        }
    }
    Ok(())
}
