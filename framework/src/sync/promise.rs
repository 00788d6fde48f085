//! `Promise` / `Resolver`: a one-shot value, Twisted's Deferred for code
//! that hands a result from one place (a worker thread, another shard, a
//! callback) to another. The resolver is `Send`; dropping it unresolved
//! resolves the promise with an error, so nothing ever hangs on it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

/// Why a promise has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromiseError {
    /// The resolver was dropped without a value: the work it stood for
    /// panicked, its shard stopped, or it was abandoned.
    #[error("the promise's resolver was dropped without a value")]
    Dropped,
    /// The work was never started: its shard's inbox was full
    /// ([`Error::Overloaded`](crate::Error::Overloaded)).
    #[error("the target shard is overloaded: its inbox is full")]
    Overloaded,
}

struct State<T> {
    value: Option<Result<T, PromiseError>>,
    waker: Option<Waker>,
}

/// The receiving half: a future of `Result<T, PromiseError>`.
///
/// ```
/// use shardloop::task::promise;
/// let (p, r) = promise::<u32>();
/// std::thread::spawn(move || r.resolve(42));
/// // In a shard task: `let v = p.await;` Here, block on it simply:
/// let v = futures_lite_block_on(p);
/// assert_eq!(v, Ok(42));
/// # fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     let mut f = std::pin::pin!(f);
/// #     let w = std::task::Waker::noop();
/// #     let mut cx = std::task::Context::from_waker(w);
/// #     loop {
/// #         if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; }
/// #         std::thread::yield_now();
/// #     }
/// # }
/// ```
pub struct Promise<T> {
    state: Arc<Mutex<State<T>>>,
}

/// The sending half; `Send` when `T` is.
pub struct Resolver<T> {
    state: Option<Arc<Mutex<State<T>>>>,
}

/// A connected promise and resolver.
pub fn promise<T>() -> (Promise<T>, Resolver<T>) {
    let state = Arc::new(Mutex::new(State {
        value: None,
        waker: None,
    }));
    (
        Promise {
            state: state.clone(),
        },
        Resolver { state: Some(state) },
    )
}

fn settle<T>(state: &Mutex<State<T>>, value: Result<T, PromiseError>) {
    let waker = {
        let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
        if s.value.is_some() {
            return;
        }
        s.value = Some(value);
        s.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

impl<T> Resolver<T> {
    /// Gives the promise its value (and wakes whoever awaits it).
    pub fn resolve(mut self, value: T) {
        if let Some(s) = self.state.take() {
            settle(&s, Ok(value));
        }
    }
}

impl<T> Resolver<T> {
    /// Settles the promise with an error instead of a value.
    pub(crate) fn fail(mut self, error: PromiseError) {
        if let Some(s) = self.state.take() {
            settle(&s, Err(error));
        }
    }
}

/// A promise that has already failed with `error`.
pub(crate) fn failed<T>(error: PromiseError) -> Promise<T> {
    let (p, r) = promise();
    r.fail(error);
    p
}

impl<T> Drop for Resolver<T> {
    fn drop(&mut self) {
        if let Some(s) = self.state.take() {
            settle(&s, Err(PromiseError::Dropped));
        }
    }
}

impl<T> Promise<T> {
    /// The value, if it has arrived (without waiting).
    pub fn try_take(&mut self) -> Option<Result<T, PromiseError>> {
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .value
            .take()
    }
}

impl<T> Future for Promise<T> {
    type Output = Result<T, PromiseError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    s.waker = Some(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }
}

impl<T> std::fmt::Debug for Promise<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Promise")
    }
}

impl<T> std::fmt::Debug for Resolver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Resolver")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let mut cx = Context::from_waker(Waker::noop());
        Pin::new(f).poll(&mut cx)
    }

    #[test]
    fn resolves_once_and_a_dropped_resolver_is_an_error() {
        let (mut p, r) = promise::<u8>();
        assert!(poll_once(&mut p).is_pending());
        r.resolve(7);
        assert_eq!(poll_once(&mut p), Poll::Ready(Ok(7)));
        let (mut p, r) = promise::<u8>();
        drop(r);
        assert_eq!(poll_once(&mut p), Poll::Ready(Err(PromiseError::Dropped)));
    }

    #[test]
    fn a_resolve_from_another_thread_wakes_the_waiter() {
        struct Flag(std::sync::atomic::AtomicBool);
        impl std::task::Wake for Flag {
            fn wake(self: Arc<Self>) {
                self.0.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        let flag = Arc::new(Flag(Default::default()));
        let waker = Waker::from(flag.clone());
        let (mut p, r) = promise::<String>();
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut p).poll(&mut cx).is_pending());
        std::thread::spawn(move || r.resolve("done".into()))
            .join()
            .unwrap();
        assert!(flag.0.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(poll_once(&mut p), Poll::Ready(Ok("done".into())));
    }
}
