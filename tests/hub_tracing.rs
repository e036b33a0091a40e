//! `tracing` events (feature `tracing`): spawn, finish, kill and error, each
//! with the greenlet's hub id and name. Run with
//! `cargo test --features tracing --test hub_tracing`.
#![cfg(feature = "tracing")]

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use greenlet::{Builder, sleep};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Records every `greenlet` event as `message k=v k=v`.
struct Recorder;

struct Line(String);

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target() == "greenlet"
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut line = Line(String::new());
        event.record(&mut line);
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        EVENTS.lock().unwrap().push(format!("{thread}: {}", line.0));
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[test]
fn spawn_finish_kill_and_error_are_traced_with_ids_and_names() {
    tracing::subscriber::set_global_default(Recorder).unwrap();
    std::thread::Builder::new()
        .name("traced".into())
        .spawn(|| {
            greenlet::run(|| {
                let ok = Builder::new().name("ok").spawn(|| 1).unwrap();
                ok.join().unwrap();
                let victim = Builder::new()
                    .name("victim")
                    .spawn(|| sleep(Duration::from_secs(60)))
                    .unwrap();
                sleep(Duration::ZERO);
                victim.kill().unwrap();
                greenlet::hub::set_error_handler(|_| ());
                let failing = Builder::new()
                    .name("failing")
                    .spawn(|| panic!("boom"))
                    .unwrap();
                failing.join().unwrap();
            });
        })
        .unwrap()
        .join()
        .unwrap();
    let events: Vec<String> = EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| e.strip_prefix("traced: ").map(str::to_owned))
        .collect();
    let has = |needle: &str| events.iter().any(|e| e.contains(needle));
    assert!(has("spawn id=1 name=ok spawned_at="), "{events:#?}");
    assert!(has("finish id=1 name=ok"), "{events:#?}");
    assert!(has("spawn id=2 name=victim"), "{events:#?}");
    assert!(has("kill id=2 name=victim error="), "{events:#?}");
    assert!(has("finish id=2 name=victim"), "{events:#?}");
    assert!(has("spawn id=3 name=failing"), "{events:#?}");
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("error ") && e.contains("failing") && e.contains("boom")),
        "{events:#?}"
    );
    // In order: each greenlet's spawn comes before its finish.
    let pos = |needle: &str| events.iter().position(|e| e.contains(needle)).unwrap();
    assert!(pos("spawn id=2") < pos("kill id=2"));
    assert!(pos("kill id=2") < pos("finish id=2"));
}
