//! A producer, three consumers and a `JoinableQueue` (gevent's classic
//! pipeline): the producer puts work items into a bounded queue, three
//! consumer greenlets take them, "process" them (a sleep standing in for
//! I/O) and call `task_done`; the main greenlet `join`s the queue, then
//! shuts it down so the consumers' loops end.
//!
//! Run with `cargo run --example pipeline`.

use greenlet::queue::JoinableQueue;
use greenlet::{GreenletError, sleep, spawn};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

const ITEMS: u64 = 30;

fn main() -> Result<(), GreenletError> {
    greenlet::run(|| {
        let started = Instant::now();
        // Bounded: the producer waits while the consumers are behind.
        let queue = JoinableQueue::bounded(5);
        let done = Rc::new(RefCell::new(Vec::new()));

        let consumers: Vec<_> = ["alpha", "beta", "gamma"]
            .into_iter()
            .map(|name| {
                let (queue, done) = (queue.clone(), done.clone());
                spawn(move || {
                    let mut handled = 0;
                    // Ends when the queue is shut down and drained.
                    for item in queue.iter() {
                        sleep(Duration::from_millis(2 + item % 3));
                        done.borrow_mut().push(item * item);
                        handled += 1;
                        queue.task_done().expect("one task_done per item");
                    }
                    println!("consumer {name} handled {handled} items");
                    handled
                })
            })
            .collect();

        let producer = {
            let queue = queue.clone();
            spawn(move || {
                for item in 0..ITEMS {
                    queue.put(item).expect("the queue is open");
                }
                println!("producer: put {ITEMS} items");
            })
        };

        producer.join()?;
        queue.join()?; // every item processed
        assert_eq!(queue.unfinished_tasks(), 0);
        queue.shutdown();

        let handled: u64 = consumers.iter().map(|c| c.get()).sum::<Result<u64, _>>()?;
        let mut results = done.borrow().clone();
        results.sort_unstable();
        let expected: Vec<u64> = (0..ITEMS).map(|i| i * i).collect();
        if handled != ITEMS || results != expected {
            println!("unexpected: handled {handled}, results {results:?}");
            return Ok(());
        }
        // Three consumers in parallel: well under the serial ~90 ms.
        println!("took {:?}", started.elapsed());
        println!("pipeline: all {ITEMS} items processed exactly once");
        Ok(())
    })
}
