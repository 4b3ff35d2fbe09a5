//! The window's tick alignment: interpolation arithmetic on hand-made counter updates, and whole
//! windows on a stand-in counter that moves in 100 ms steps like NVML's (no GPU).

use energy_fit::measure::meter::{
    counter_at, median_period_ms, EnergyMeter, GpuInfo, Sample, Window,
};
use energy_fit::measure::standin::{StandinConfig, StandinMeter};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn end_is_interpolated_between_the_updates_around_it() {
    let ticks = [(0.0, 1000), (0.1, 1070), (0.2, 1140)];
    assert_eq!(counter_at(&ticks, 0.15), (1105.0, true));
    assert_eq!(counter_at(&ticks, 0.125), (1087.5, true));
    // On an update: that update's value (it is the last one at or before t_end).
    assert_eq!(counter_at(&ticks, 0.1), (1070.0, true));
    assert_eq!(counter_at(&ticks, 0.0), (1000.0, true));
    // Uneven updates: the interval around t_end alone counts.
    assert_eq!(
        counter_at(&[(0.0, 0), (0.1, 100), (0.3, 500)], 0.25),
        (400.0, true)
    );
}

#[test]
fn without_an_update_after_the_end_the_plain_reading_stands() {
    let ticks = [(0.0, 1000), (0.1, 1070)];
    assert_eq!(counter_at(&ticks, 0.17), (1070.0, false));
    assert_eq!(counter_at(&ticks[..1], 0.5), (1000.0, false));
    // Degenerate inputs never panic.
    assert_eq!(counter_at(&ticks, -0.1), (1000.0, false));
    assert!(counter_at(&[], 0.1).0.is_nan());
}

#[test]
fn update_period_is_the_median_interval() {
    assert_eq!(
        median_period_ms(&[(0.0, 0), (0.1, 1), (0.2, 2), (0.5, 3)]),
        Some(100.0)
    );
    let p = median_period_ms(&[(0.0, 0), (0.1, 1), (0.3, 2)]).unwrap(); // 100 and 200 ms
    assert!((p - 150.0).abs() < 1e-9, "{p}");
    assert_eq!(median_period_ms(&[(0.0, 0)]), None);
    assert_eq!(median_period_ms(&[]), None);
}

#[test]
fn standin_tick_ms_steps_the_counter() {
    let cfg = StandinConfig::parse("power_w=400,tick_ms=50").unwrap();
    assert_eq!(cfg.tick_ms, 50.0);
    assert_eq!(StandinConfig::parse("").unwrap().tick_ms, 0.0);
    for bad in ["-1", "x"] {
        let e = StandinConfig::parse(&format!("tick_ms={bad}"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("tick_ms") && e.contains(&format!("{bad:?}")),
            "{e}"
        );
    }
    let m = StandinMeter::open_all(&cfg, &[0]).unwrap().pop().unwrap();
    for _ in 0..5 {
        // 400 W × 50 ms = 20 J = 20 000 mJ per step.
        assert_eq!(m.energy_mj().unwrap() % 20_000, 0);
        std::thread::sleep(Duration::from_millis(17));
    }
}

/// 100 ms counter steps, constant power P, windows of a few tenths of a second. A plain reading at
/// each end would be off by up to P × 100 ms per end (up to ~57 % of a 0.35 s window). With the
/// alignment the error comes only from how late each update is noticed (read + poll interval,
/// 1–2 ms when the machine is free): the tolerance is a tenth of a step plus 5 ms of scheduling
/// slack, P × 15 ms (~4 % of 0.35 s), loose enough for a loaded 2-core CI machine.
#[test]
fn windows_on_a_stepped_counter_are_exact_within_a_fraction_of_a_step() {
    let (p, tick_s) = (400.0, 0.1);
    let cfg = StandinConfig::parse("power_w=400,tick_ms=100").unwrap();
    let m: Arc<dyn EnergyMeter> =
        Arc::new(StandinMeter::open_all(&cfg, &[0]).unwrap().pop().unwrap());
    // Lengths off the step grid so the end falls at different phases of a step.
    for secs in [0.35, 0.27, 0.43] {
        let w = Window::start(m.clone(), Duration::from_millis(20)).unwrap();
        std::thread::sleep(Duration::from_secs_f64(secs));
        let r = w.finish().unwrap();
        let err = r.energy_j - p * r.duration_s;
        eprintln!(
            "window {:.3} s: {:.3} J, error {err:+.3} J ({:+.2} %), period {:?} ms",
            r.duration_s,
            r.energy_j,
            100.0 * err / (p * r.duration_s),
            r.counter_period_ms
        );
        assert!(r.aligned, "{r:?}");
        assert!(
            r.duration_s >= secs,
            "duration {} < slept {secs}",
            r.duration_s
        );
        assert!(
            err.abs() < p * (0.1 * tick_s + 0.005),
            "window {} s: {} J vs {} J",
            r.duration_s,
            r.energy_j,
            p * r.duration_s
        );
        let period = r
            .counter_period_ms
            .expect("≥ 2 updates in a 0.27 s window plus the one after it");
        assert!((period - 100.0).abs() < 20.0, "period {period} ms");
        assert_eq!(r.mean_power_w(), p);
    }
}

/// A counter that never moves (the update period is longer than the 1 s timeout).
struct Frozen;
impl EnergyMeter for Frozen {
    fn info(&self) -> anyhow::Result<GpuInfo> {
        unreachable!()
    }
    fn energy_mj(&self) -> anyhow::Result<u64> {
        Ok(5_000)
    }
    fn sample(&self) -> anyhow::Result<Sample> {
        Ok(Sample {
            t_s: 0.0,
            power_w: 10.0,
            sm_clock_mhz: 0.0,
            mem_clock_mhz: 0.0,
            temp_c: 0.0,
        })
    }
}

#[test]
fn a_counter_that_does_not_move_falls_back_to_plain_readings() {
    let w = Window::start(Arc::new(Frozen), Duration::from_millis(20)).unwrap(); // waits 1 s
    std::thread::sleep(Duration::from_millis(30));
    let t = std::time::Instant::now();
    let r = w.finish().unwrap(); // waits 1 s more
    assert!(t.elapsed() >= Duration::from_secs(1));
    assert!(!r.aligned);
    assert_eq!(r.energy_j, 0.0);
    assert_eq!(r.counter_period_ms, None);
    // The wait for an update after the end is not part of the window.
    assert!(
        r.duration_s >= 0.03 && r.duration_s < 0.9,
        "{}",
        r.duration_s
    );
}
