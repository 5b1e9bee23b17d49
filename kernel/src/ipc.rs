//! Kernel IPC: synchronous, 64-byte messages copied through the kernel, one trap per operation —
//! the baseline the shared-memory channels are measured against (DESIGN.md §8). A sender blocks
//! until the receiver takes its message; `call` also waits for the reply; `reply_recv` answers
//! and waits for the next message in one trap. Only processes the manifest lets talk may.

use crate::process::{self, Process};
use crate::sched;
use alloc::sync::Arc;
use axolotl_abi::{Error, IPC_MSG_LEN};
use core::sync::atomic::Ordering;
use spin::Mutex;

/// Serialises all IPC state changes.
static IPC: Mutex<()> = Mutex::new(());

fn read_msg(ptr: u64) -> Result<[u8; IPC_MSG_LEN], Error> {
    let v = crate::user::read_bytes(ptr, IPC_MSG_LEN as u64)?;
    let mut m = [0u8; IPC_MSG_LEN];
    m.copy_from_slice(&v);
    Ok(m)
}

fn peer(me: &Process, pid: u32) -> Result<Arc<Process>, Error> {
    let p = process::by_pid(pid).ok_or(Error::NotFound)?;
    if p.is_dead() {
        return Err(Error::Gone);
    }
    if !sched::may_talk(me, &p) {
        process::log_denied(me, "IPC", &p.name);
        return Err(Error::Denied);
    }
    Ok(p)
}

/// Delivers `msg` to `dest`: straight into its inbox if it waits in `recv`, else queued. Returns
/// true when delivered at once.
fn deliver(me: &Arc<Process>, dest: &Arc<Process>, msg: [u8; IPC_MSG_LEN], call: bool) -> bool {
    let _g = IPC.lock();
    me.ipc_done.store(false, Ordering::Relaxed);
    me.ipc_failed.store(false, Ordering::Relaxed);
    let mut d = dest.ipc.lock();
    if d.recv_waiting {
        d.recv_waiting = false;
        d.inbox = msg;
        d.inbox_from = me.pid;
        drop(d);
        if call {
            me.ipc.lock().awaiting_reply_from = Some(dest.pid);
        }
        dest.ipc_done.store(true, Ordering::Release);
        sched::wake_blocked(dest);
        true
    } else {
        d.send_queue.push_back(me.pid);
        drop(d);
        let mut m = me.ipc.lock();
        m.outbox = msg;
        m.call_mode = call;
        drop(m);
        // A server polling its status page rather than the kernel sees that a message waits
        // (the count moves before the notify, so a server that the notify wakes sees it too)...
        process::bump_mail(dest.slot);
        // ...and a receiver idling in `wait` (not `ipc_recv`) learns it.
        sched::notify(dest);
        false
    }
}

pub fn send(me: &Arc<Process>, dest: u32, msg_ptr: u64) -> Result<(), Error> {
    let msg = read_msg(msg_ptr)?;
    let dest = peer(me, dest)?;
    if !deliver(me, &dest, msg, false) {
        sched::block_until(me, u64::MAX, || me.ipc_done.load(Ordering::Acquire));
        if me.ipc_failed.load(Ordering::Acquire) || !me.ipc_done.load(Ordering::Acquire) {
            return Err(Error::Gone);
        }
    }
    Ok(())
}

pub fn call(me: &Arc<Process>, dest: u32, msg_ptr: u64, reply_ptr: u64) -> Result<u64, Error> {
    call_timeout(me, dest, msg_ptr, reply_ptr, u64::MAX)
}

pub fn call_timeout(
    me: &Arc<Process>,
    dest: u32,
    msg_ptr: u64,
    reply_ptr: u64,
    timeout_ns: u64,
) -> Result<u64, Error> {
    let msg = read_msg(msg_ptr)?;
    let dest = peer(me, dest)?;
    // `deliver` cleared ipc_done under the IPC lock; `reply` (or a failure) sets it again.
    deliver(me, &dest, msg, true);
    let answered = sched::block_until(me, timeout_ns, || {
        me.ipc_done.load(Ordering::Acquire) && me.ipc.lock().awaiting_reply_from.is_none()
    });
    if !answered {
        // Withdraw: out of the receiver's queue if it never took the message, and no longer
        // awaiting a reply (a late one is refused).
        let _g = IPC.lock();
        dest.ipc.lock().send_queue.retain(|&p| p != me.pid);
        me.ipc.lock().awaiting_reply_from = None;
        if !me.ipc_done.load(Ordering::Acquire) {
            return Err(Error::TimedOut);
        }
    }
    if me.ipc_failed.load(Ordering::Acquire) {
        return Err(Error::Gone);
    }
    let reply = me.ipc.lock().reply_box;
    crate::user::write_bytes(reply_ptr, &reply)?;
    Ok(0)
}

/// Takes the next message for `me` (blocking up to `timeout_ns`) and returns (sender, message).
fn take(me: &Arc<Process>, timeout_ns: u64) -> Result<(u32, [u8; IPC_MSG_LEN]), Error> {
    {
        let _g = IPC.lock();
        let mut m = me.ipc.lock();
        while let Some(sender_pid) = m.send_queue.pop_front() {
            drop(m);
            let Some(sender) = process::by_pid(sender_pid) else {
                m = me.ipc.lock();
                continue;
            };
            let mut s = sender.ipc.lock();
            let msg = s.outbox;
            if s.call_mode {
                s.awaiting_reply_from = Some(me.pid);
                drop(s);
            } else {
                drop(s);
                sender.ipc_done.store(true, Ordering::Release);
                sched::wake_blocked(&sender);
            }
            return Ok((sender_pid, msg));
        }
        m.recv_waiting = true;
        me.ipc_done.store(false, Ordering::Release);
    }
    sched::block_until(me, timeout_ns, || me.ipc_done.load(Ordering::Acquire));
    let _g = IPC.lock();
    let mut m = me.ipc.lock();
    // Decided under the IPC lock: a sender that delivered after the wait timed out (but before
    // we got here) has put its message in the inbox, and it must not be lost.
    if !me.ipc_done.load(Ordering::Acquire) {
        m.recv_waiting = false;
        return Err(Error::TimedOut);
    }
    Ok((m.inbox_from, m.inbox))
}

pub fn recv(me: &Arc<Process>, msg_ptr: u64, timeout_ns: u64) -> Result<u64, Error> {
    crate::user::write_bytes(msg_ptr, &[0u8; IPC_MSG_LEN])?; // check the buffer before blocking
    let (from, msg) = take(me, timeout_ns)?;
    crate::user::write_bytes(msg_ptr, &msg)?;
    Ok(from as u64)
}

fn reply(me: &Arc<Process>, to: u32, reply: [u8; IPC_MSG_LEN]) -> Result<(), Error> {
    let _g = IPC.lock();
    let target = process::by_pid(to).ok_or(Error::NotFound)?;
    let mut t = target.ipc.lock();
    if t.awaiting_reply_from != Some(me.pid) {
        return Err(Error::Invalid);
    }
    t.awaiting_reply_from = None;
    t.reply_box = reply;
    drop(t);
    target.ipc_done.store(true, Ordering::Release);
    sched::wake_blocked(&target);
    Ok(())
}

pub fn reply_only(me: &Arc<Process>, to: u32, reply_ptr: u64) -> Result<(), Error> {
    let r = read_msg(reply_ptr)?;
    reply(me, to, r)
}

pub fn reply_recv(me: &Arc<Process>, to: u32, reply_ptr: u64, msg_ptr: u64) -> Result<u64, Error> {
    let r = read_msg(reply_ptr)?;
    reply(me, to, r)?;
    recv(me, msg_ptr, u64::MAX)
}

/// Fails every IPC that waits on the dying process `dead`.
pub fn on_death(dead: &Arc<Process>) {
    let _g = IPC.lock();
    for p in process::all() {
        if p.pid == dead.pid {
            continue;
        }
        let mut s = p.ipc.lock();
        let waits_reply = s.awaiting_reply_from == Some(dead.pid);
        let queued = dead.ipc.lock().send_queue.contains(&p.pid);
        if waits_reply || queued {
            s.awaiting_reply_from = None;
            drop(s);
            p.ipc_failed.store(true, Ordering::Release);
            p.ipc_done.store(true, Ordering::Release);
            sched::wake_blocked(&p);
        }
    }
}
