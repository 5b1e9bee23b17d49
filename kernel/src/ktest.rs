//! In-kernel tests (`test=kernel` on the command line): what can only be checked on the real
//! machine — frame allocator, paging, heap, per-CPU data, interrupts and timers. Each prints
//! `ktest NAME ... ok|FAILED: reason`, then `ktest: N passed, M failed`, and QEMU exits with the
//! verdict.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;
use core::sync::atomic::Ordering;
use x86_64::VirtAddr;
use x86_64::structures::paging::{Page, PageTableFlags};

type Test = (&'static str, fn() -> Result<(), String>);

const TESTS: &[Test] = &[
    ("frames_alloc_free", frames_alloc_free),
    (
        "frames_below_1mib_and_contiguous",
        frames_below_and_contiguous,
    ),
    ("paging_map_translate_unmap", paging_map_translate_unmap),
    ("paging_guard_page_below_stack", paging_guard_page),
    ("heap_small_and_large", heap_small_and_large),
    ("heap_churn_keeps_contents", heap_churn),
    ("percpu_blocks_of_every_cpu", percpu_blocks),
    ("percpu_self_check_on_every_cpu", percpu_self_check),
    ("timer_ticks_on_every_cpu", timer_ticks_everywhere),
    ("tsc_calibration_matches_apic_timer", tsc_vs_timer),
    ("idt_breakpoint_returns", idt_breakpoint),
];

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)*) => {
        if !$cond {
            return Err(alloc::format!($($fmt)*));
        }
    };
}

pub fn run_all() -> ! {
    let mut failed = 0;
    for (name, test) in TESTS {
        match test() {
            Ok(()) => crate::serial::write_str(&alloc::format!("ktest {name} ... ok\n")),
            Err(why) => {
                failed += 1;
                crate::serial::write_str(&alloc::format!("ktest {name} ... FAILED: {why}\n"));
            }
        }
    }
    let passed = TESTS.len() - failed;
    crate::serial::write_str(&alloc::format!("ktest: {passed} passed, {failed} failed\n"));
    crate::exit::exit_qemu(if failed == 0 {
        crate::exit::QemuExit::Success
    } else {
        crate::exit::QemuExit::Failure
    })
}

fn frames_alloc_free() -> Result<(), String> {
    let before = crate::memory::free_frames();
    let frames: Vec<_> = (0..64)
        .filter_map(|_| crate::memory::alloc_frame())
        .collect();
    ensure!(
        frames.len() == 64,
        "only {} of 64 frames allocated",
        frames.len()
    );
    ensure!(
        crate::memory::free_frames() == before - 64,
        "free count did not drop by 64"
    );
    for (i, a) in frames.iter().enumerate() {
        ensure!(
            frames[i + 1..].iter().all(|b| b != a),
            "frame {a:?} handed out twice"
        );
        // Every frame arrives zeroed.
        let p = crate::memory::phys_to_virt(a.start_address().as_u64()).as_ptr::<u64>();
        // Safety: the frame is ours and mapped at the physical offset.
        let words = unsafe { core::slice::from_raw_parts(p, 512) };
        ensure!(words.iter().all(|&w| w == 0), "frame {a:?} not zeroed");
    }
    for f in &frames {
        crate::memory::free_frame(*f).map_err(|e| alloc::format!("free failed: {e:?}"))?;
    }
    ensure!(
        crate::memory::free_frame(frames[0]).is_err(),
        "double free was accepted"
    );
    ensure!(
        crate::memory::free_frames() == before,
        "free count not restored"
    );
    Ok(())
}

fn frames_below_and_contiguous() -> Result<(), String> {
    let low = crate::memory::alloc_frame_below(0x10_0000).ok_or("no frame below 1 MiB")?;
    ensure!(
        low.start_address().as_u64() < 0x10_0000,
        "frame {low:?} not below 1 MiB"
    );
    crate::memory::free_frame(low).map_err(|e| alloc::format!("{e:?}"))?;
    let run = crate::memory::alloc_contiguous(32).ok_or("no 32 contiguous frames")?;
    for i in 0..32 {
        let f = x86_64::structures::paging::PhysFrame::containing_address(run + i * 4096);
        crate::memory::free_frame(f).map_err(|e| alloc::format!("frame {i} of the run: {e:?}"))?;
    }
    Ok(())
}

fn paging_map_translate_unmap() -> Result<(), String> {
    let va = crate::memory::reserve_window(1).map_err(|e| alloc::format!("{e:?}"))?;
    let page = Page::containing_address(va);
    let frame = crate::memory::alloc_frame().ok_or("out of frames")?;
    ensure!(
        crate::memory::translate(va).is_none(),
        "fresh window page already mapped"
    );
    crate::memory::map_page(
        page,
        frame,
        PageTableFlags::PRESENT | PageTableFlags::WRITABLE,
    )
    .map_err(|e| alloc::format!("map: {e:?}"))?;
    ensure!(
        crate::memory::translate(va + 0x123u64) == Some(frame.start_address() + 0x123u64),
        "translate disagrees with the mapping"
    );
    // Safety: the page was just mapped to a frame we own.
    unsafe { (va.as_mut_ptr::<u64>()).add(7).write_volatile(0xA11C_0DE5) };
    let through_phys = crate::memory::phys_to_virt(frame.start_address().as_u64() + 56);
    // Safety: the same frame seen through the physical-memory mapping.
    let seen = unsafe { through_phys.as_ptr::<u64>().read_volatile() };
    ensure!(
        seen == 0xA11C_0DE5,
        "write through the new mapping not seen in the frame ({seen:#x})"
    );
    ensure!(
        crate::memory::unmap_page(page) == Some(frame),
        "unmap returned the wrong frame"
    );
    ensure!(
        crate::memory::translate(va).is_none(),
        "page still mapped after unmap"
    );
    crate::memory::free_frame(frame).map_err(|e| alloc::format!("{e:?}"))?;
    Ok(())
}

fn paging_guard_page() -> Result<(), String> {
    let top = crate::memory::alloc_stack(2).map_err(|e| alloc::format!("{e:?}"))?;
    ensure!(top.as_u64() % 16 == 0, "stack top not aligned");
    ensure!(
        crate::memory::translate(top - 8u64).is_some(),
        "top of stack not mapped"
    );
    ensure!(
        crate::memory::translate(top - 2 * 4096u64).is_some(),
        "bottom of stack not mapped"
    );
    ensure!(
        crate::memory::translate(top - 2 * 4096u64 - 1u64).is_none(),
        "guard page is mapped"
    );
    Ok(())
}

fn heap_small_and_large() -> Result<(), String> {
    let (used0, _) = crate::heap::stats();
    {
        let small: Vec<Box<u64>> = (0..1000).map(Box::new).collect();
        ensure!(
            small.iter().enumerate().all(|(i, b)| **b == i as u64),
            "small boxes corrupted"
        );
        let big = alloc::vec![0x5Au8; 4 * 1024 * 1024];
        ensure!(big.iter().all(|&b| b == 0x5A), "4 MiB vector corrupted");
    }
    let (used1, _) = crate::heap::stats();
    ensure!(used1 <= used0 + 64, "heap leaked {} bytes", used1 - used0);
    Ok(())
}

fn heap_churn() -> Result<(), String> {
    let mut live: Vec<Vec<u32>> = Vec::new();
    let mut seed = 0x9E37_79B9u32;
    for round in 0..5000u32 {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        if seed.is_multiple_of(3) && !live.is_empty() {
            let v = live.swap_remove(seed as usize % live.len());
            let tag = v[0];
            ensure!(
                v.iter().all(|&x| x == tag),
                "vector with tag {tag} corrupted"
            );
        } else {
            let len = 1 + (seed % 300) as usize;
            live.push(alloc::vec![round; len]);
        }
    }
    Ok(())
}

fn percpu_blocks() -> Result<(), String> {
    let n = crate::percpu::online_count() as usize;
    ensure!(n >= 1, "no CPU online");
    ensure!(
        crate::percpu::current().index == 0,
        "tests do not run on cpu0"
    );
    let mut ids = Vec::new();
    for i in 0..n {
        let cpu = crate::percpu::get(i).ok_or_else(|| alloc::format!("cpu{i} has no block"))?;
        ensure!(
            cpu.index as usize == i,
            "cpu{i}'s block says index {}",
            cpu.index
        );
        ensure!(
            !ids.contains(&cpu.apic_id),
            "APIC id {} used twice",
            cpu.apic_id
        );
        ids.push(cpu.apic_id);
        let ist = cpu.gdt.tss.interrupt_stack_table;
        ensure!(
            ist.iter().take(3).all(|s| s.as_u64() != 0),
            "cpu{i} lacks IST stacks"
        );
    }
    ensure!(
        crate::percpu::get(n).is_none(),
        "a block exists past the online CPUs"
    );
    Ok(())
}

fn percpu_self_check() -> Result<(), String> {
    let n = crate::percpu::online_count();
    let want = if n >= 64 { u64::MAX } else { (1u64 << n) - 1 };
    let got = crate::smp::SELF_CHECK_OK.load(Ordering::Relaxed);
    ensure!(
        got & want == want,
        "self-check bits {got:#b}, expected {want:#b}"
    );
    Ok(())
}

fn timer_ticks_everywhere() -> Result<(), String> {
    let n = crate::percpu::online_count() as usize;
    let ticks =
        |i: usize| crate::percpu::get(i).map_or(0, |c| c.counters.ticks.load(Ordering::Relaxed));
    let before: Vec<u64> = (0..n).map(ticks).collect();
    crate::time::spin_ns(100_000_000);
    for (i, b) in before.iter().enumerate() {
        let after = ticks(i);
        ensure!(
            after > *b,
            "cpu{i} took no timer tick in 100 ms ({b} -> {after})"
        );
    }
    Ok(())
}

fn tsc_vs_timer() -> Result<(), String> {
    // 50 ms of TSC time should hold about 5 ticks at 100 Hz; emulation is noisy, so accept 2..=12.
    let c = &crate::percpu::current().counters;
    let t0 = c.ticks.load(Ordering::Relaxed);
    crate::time::spin_ns(50_000_000);
    let n = c.ticks.load(Ordering::Relaxed) - t0;
    ensure!(
        (2..=12).contains(&n),
        "{n} ticks in 50 ms of TSC time (expected about 5)"
    );
    ensure!(
        crate::time::tsc_hz() > 100_000_000,
        "TSC at {} Hz is implausible",
        crate::time::tsc_hz()
    );
    Ok(())
}

fn idt_breakpoint() -> Result<(), String> {
    let before = crate::trap::BREAKPOINTS.load(Ordering::Relaxed);
    x86_64::instructions::interrupts::int3();
    let after = crate::trap::BREAKPOINTS.load(Ordering::Relaxed);
    ensure!(
        after == before + 1,
        "breakpoint handler did not run once ({before} -> {after})"
    );
    let _ = VirtAddr::zero();
    Ok(())
}
