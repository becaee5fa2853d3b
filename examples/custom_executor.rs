//! smolreq under a hand-written executor: 100 concurrent requests on one
//! thread, with no runtime at all. The executor is the part between the
//! two rules; the rest starts a tiny loopback server to talk to.

use std::collections::VecDeque;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Wake, Waker};

// ---------------------------------------------------------------------------
/// Ids of tasks that were woken, and a condition variable to sleep on.
#[derive(Default)]
struct ReadyQueue {
    ids: Mutex<VecDeque<usize>>,
    wakeup: Condvar,
}

struct TaskWaker {
    id: usize,
    queue: Arc<ReadyQueue>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.queue.ids.lock().unwrap().push_back(self.id);
        self.queue.wakeup.notify_one();
    }
}

/// Polls every task once, then only the ones that were woken, sleeping on
/// the condition variable while none are, until all have finished.
fn run_all(tasks: Vec<Pin<Box<dyn Future<Output = ()>>>>) {
    let queue = Arc::new(ReadyQueue::default());
    let wakers: Vec<Waker> =
        (0..tasks.len()).map(|id| Waker::from(Arc::new(TaskWaker { id, queue: queue.clone() }))).collect();
    let mut tasks: Vec<Option<_>> = tasks.into_iter().map(Some).collect();
    let mut pending = tasks.len();
    queue.ids.lock().unwrap().extend(0..tasks.len());
    while pending > 0 {
        let id = {
            let mut ids = queue.ids.lock().unwrap();
            loop {
                match ids.pop_front() {
                    Some(id) => break id,
                    None => ids = queue.wakeup.wait(ids).unwrap(),
                }
            }
        };
        let Some(task) = tasks[id].as_mut() else { continue };
        if task.as_mut().poll(&mut Context::from_waker(&wakers[id])).is_ready() {
            tasks[id] = None;
            pending -= 1;
        }
    }
}
// ---------------------------------------------------------------------------

fn main() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut writer = stream;
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => {
                            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                        }
                        Ok(_) => {}
                    }
                }
            });
        }
    });

    let client = smolreq::Client::builder().max_connections_per_host(16).build().unwrap();
    let ok = Arc::new(Mutex::new(0));
    let tasks: Vec<Pin<Box<dyn Future<Output = ()>>>> = (0..100)
        .map(|i| {
            let (client, ok) = (client.clone(), ok.clone());
            Box::pin(async move {
                let body = client.get(format!("http://{addr}/{i}")).send().await.unwrap().text().await.unwrap();
                assert_eq!(body, "ok");
                *ok.lock().unwrap() += 1;
            }) as Pin<Box<dyn Future<Output = ()>>>
        })
        .collect();
    run_all(tasks);
    let stats = client.pool_stats();
    println!(
        "100 requests on one thread: {} ok, {} connections opened, {} reused",
        ok.lock().unwrap(),
        stats.opened,
        stats.reused
    );
    assert_eq!(*ok.lock().unwrap(), 100);
    assert!(stats.opened <= 16);
}
