//! A batch on the wire: the cached answers taken, the rest sent concurrently — each only
//! while the batch's [`Limit`] allows what its answers would then take.
//!
//! The limit sees the answers so far (cached and received) with their tokens, plus the
//! requests in flight and the next one, each counted at an estimate: the largest tokens an
//! answer of the batch has taken (each count on its own) or, before any is known, the
//! largest bound of the batch's requests ([`Exchange::bound`]). When the limit says no while
//! requests are in flight, the next request waits for them and asks again with what they
//! took; when nothing is in flight, the rest are held back. So the last check is made on
//! answers alone, and a rerun over the same cache stops at the same request without sending
//! it.

use std::sync::{Arc, Mutex, MutexGuard};

use indicatif::ProgressBar;
use serde_json::Value;
use tokio::sync::{Notify, Semaphore};

use super::cache::Answer;
use super::{Cache, Client, Exchange, Limit, Outcome, Parse, Tally, Usage, send};

/// What the batch's answers have taken so far, and what is in flight.
struct Taken {
    answered: Tally,
    in_flight: usize,
    /// The largest tokens of one answer, each count on its own.
    largest: Option<Usage>,
    /// The largest bound of the requests to send: the estimate before any answer is known.
    bound: Usage,
}

impl Taken {
    fn answer(&mut self, usage: Usage) {
        self.answered = self.answered + Tally { answers: 1, usage };
        self.largest = Some(self.largest.map_or(usage, |l| l.max(usage)));
    }

    /// The batch with the requests in flight and one more, each at the estimate.
    fn with_next(&self) -> Tally {
        let unanswered = self.in_flight + 1;
        let estimate = self.largest.unwrap_or(self.bound);
        self.answered
            + Tally {
                answers: unanswered,
                usage: estimate * unanswered as u64,
            }
    }
}

fn lock(taken: &Mutex<Taken>) -> MutexGuard<'_, Taken> {
    taken.lock().unwrap_or_else(|e| e.into_inner())
}

/// A request in flight: counted in [`Taken`] until it ends, however it ends (a panicked
/// task too, so a request waiting for room is always woken).
struct InFlight {
    taken: Arc<Mutex<Taken>>,
    arrived: Arc<Notify>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.taken).in_flight -= 1;
        self.arrived.notify_one();
    }
}

/// What [`send_missing`] did: each sent request's reply, and the requests held back.
type Sent = (Vec<(usize, Result<Answer, String>)>, Vec<usize>);

/// [`Client::run`].
pub(super) fn run(
    client: &Client,
    exchanges: &[Exchange],
    cache: &Arc<Cache>,
    parse: &Parse,
    limit: Option<&Limit>,
    label: &str,
) -> Outcome {
    let mut answers: Vec<Option<Result<Value, String>>> = vec![None; exchanges.len()];
    let mut taken = Taken {
        answered: Tally::default(),
        in_flight: 0,
        largest: None,
        bound: Usage::default(),
    };
    let mut missing = Vec::new();
    for (i, exchange) in exchanges.iter().enumerate() {
        match cache.get(&exchange.key) {
            Some(hit) => {
                taken.answer(hit.usage);
                answers[i] = Some(Ok(hit.reply));
            }
            None => {
                taken.bound = taken.bound.max(exchange.bound);
                missing.push(i);
            }
        }
    }
    let cached = taken.answered;
    let mut outcome = Outcome {
        answers: Vec::new(),
        sent: 0,
        cached: cached.answers,
        held: 0,
        sent_usage: Usage::default(),
        used_usage: cached.usage,
    };
    if !missing.is_empty() {
        tracing::info!(
            "{}: {} request(s), {} from the cache",
            client.name,
            exchanges.len(),
            cached.answers
        );
        let bar = crate::progress::bar(missing.len() as u64, label);
        let taken = Arc::new(Mutex::new(taken));
        let (replies, held) = client.runtime.block_on(send_missing(
            client, exchanges, &missing, cache, parse, limit, &taken, &bar,
        ));
        bar.finish_and_clear();
        for (i, reply) in replies {
            answers[i] = Some(reply.map(|a| {
                outcome.sent_usage += a.usage;
                a.reply
            }));
        }
        for &i in &held {
            answers[i] = Some(Err("not sent: the limit on the batch was reached".into()));
        }
        outcome.sent = missing.len() - held.len();
        outcome.held = held.len();
        outcome.used_usage += outcome.sent_usage;
    }
    outcome.answers = answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err("the request was lost".to_string())))
        .collect();
    outcome
}

/// Send the `missing` exchanges, at most the transport's concurrency at once, each when
/// [`room`] says the limit allows it; cache each answer as it arrives.
#[allow(clippy::too_many_arguments)] // the parts of one batch, passed through
async fn send_missing(
    client: &Client,
    exchanges: &[Exchange],
    missing: &[usize],
    cache: &Arc<Cache>,
    parse: &Parse,
    limit: Option<&Limit>,
    taken: &Arc<Mutex<Taken>>,
    bar: &ProgressBar,
) -> Sent {
    let gate = Arc::new(Semaphore::new(client.transport.concurrency.max(1)));
    let arrived = Arc::new(Notify::new());
    let mut tasks = tokio::task::JoinSet::new();
    let mut held = Vec::new();
    for (n, &i) in missing.iter().enumerate() {
        let permit = gate
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        if !room(taken, &arrived, limit).await {
            held = missing[n..].to_vec();
            break;
        }
        let in_flight = InFlight {
            taken: taken.clone(),
            arrived: arrived.clone(),
        };
        let (http, cache, parse, bar) = (
            client.client.clone(),
            cache.clone(),
            parse.clone(),
            bar.clone(),
        );
        let (exchange, transport, name) = (
            exchanges[i].clone(),
            client.transport.clone(),
            client.name.clone(),
        );
        tasks.spawn(async move {
            let reply = send::with_retries(&http, &name, &exchange, &transport, &parse).await;
            if let Ok(answer) = &reply {
                if let Err(e) = cache.put(&exchange.key, answer) {
                    tracing::warn!("request cache: {e}");
                }
                lock(&in_flight.taken).answer(answer.usage);
            }
            drop((in_flight, permit));
            bar.inc(1);
            (i, reply)
        });
    }
    let mut done = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(result) => done.push(result),
            Err(e) => tracing::error!("{}: a request task failed: {e}", client.name),
        }
    }
    (done, held)
}

/// Whether the next request may go out: at once when the limit allows it (it is then
/// counted in flight), after the requests in flight when it does not yet, never when
/// nothing is in flight and the limit still says no.
async fn room(taken: &Mutex<Taken>, arrived: &Notify, limit: Option<&Limit>) -> bool {
    loop {
        {
            let mut t = lock(taken);
            if limit.is_none_or(|allows| allows(&t.with_next())) {
                t.in_flight += 1;
                return true;
            }
            if t.in_flight == 0 {
                return false;
            }
        }
        arrived.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(input_tokens: u64, output_tokens: u64) -> Usage {
        Usage {
            input_tokens,
            output_tokens,
        }
    }

    #[test]
    fn unanswered_requests_count_at_the_largest_answer_or_else_the_bound() {
        let mut t = Taken {
            answered: Tally::default(),
            in_flight: 1,
            largest: None,
            bound: usage(100, 50),
        };
        assert_eq!(
            t.with_next(),
            Tally {
                answers: 2,
                usage: usage(200, 100)
            }
        );
        t.answer(usage(10, 2));
        t.answer(usage(4, 6));
        assert_eq!(
            t.with_next(),
            Tally {
                answers: 4,
                usage: usage(14 + 2 * 10, 8 + 2 * 6)
            }
        );
    }
}
