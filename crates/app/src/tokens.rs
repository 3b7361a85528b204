//! A stand-in for a language model: `/stream?prompt=...` sends an answer one token at
//! a time, like the streaming APIs of LLM services do over SSE.
//!
//! The answer is a pure function of the prompt ([`answer_tokens`]): no clock, no
//! randomness from the OS. That is what makes resuming work even across a server
//! restart: a client that reconnects with `Last-Event-ID: 17` gets token 18 of the very
//! same answer ([`parse_last_event_id`], [`token_stream`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;
use serde::Serialize;
use tokio::time::{Interval, MissedTickBehavior};
use wsse_wire::sse::Event;

use crate::hub::parse_seq;
use crate::shutdown::Shutdown;

/// The data of the event that ends a stream, as in the OpenAI-style streaming APIs.
pub const DONE: &str = "[DONE]";

/// How much of the prompt the answer quotes, in characters.
const MAX_TOPIC_CHARS: usize = 80;

const OPENERS: &[&str] = &[
    "Great question! Here is how I would think about {topic}.",
    "Let me explain {topic} step by step.",
    "Sure. {topic} deserves a careful answer, so let us take it slowly.",
    "Happy to help with {topic}; here is a short overview.",
    "Good idea to ask about {topic}. The answer has a few parts.",
];

const MIDDLES: &[&str] = &[
    "First, it helps to separate what it is from how it is used in practice.",
    "The short version is that a few simple ideas work together here.",
    "Most people start with a small example, then grow it one step at a time.",
    "A common mistake is to optimize too early, before measuring where the time really goes.",
    "It also pays to write down your assumptions, because they tend to change later.",
    "When something goes wrong, reading the error message carefully usually points at the cause.",
    "Streaming an answer token by token, like this one, lets the reader start before the end.",
    "Every system has limits, and a good design says clearly what they are.",
    "Testing the edge cases early saves a lot of debugging in production.",
    "Connections drop, so plan for reconnecting and resuming from where you were.",
];

const CLOSERS: &[&str] = &[
    "In short, {topic} rewards patience and small experiments.",
    "I hope this gives you a useful starting point for {topic}.",
    "Let me know if you want a deeper dive into any part of {topic}.",
    "That covers the essentials of {topic}; the details are worth exploring next.",
];

/// How many middle sentences an answer has.
const MIDDLE_SENTENCES: usize = 3;

// ANCHOR: answer_tokens
/// The answer to `prompt`, split into tokens the way a language model's output looks:
/// words with their leading space (`" stream"`), punctuation on its own, long words
/// in two pieces. Always at least 40 tokens; joined, they give the answer text.
///
/// The same prompt gives the same tokens every time, on every machine: the sentences
/// are picked by a hash of the prompt (FNV-1a, then a small generator).
pub fn answer_tokens(prompt: &str) -> Vec<String> {
    let topic = topic(prompt);
    let mut picker = Picker::new(prompt);

    let mut sentences = vec![picker.pick(OPENERS).replace("{topic}", &topic)];
    let mut middles: Vec<&str> = MIDDLES.to_vec();
    for _ in 0..MIDDLE_SENTENCES {
        let index = picker.below(middles.len());
        sentences.push(middles.remove(index).to_owned());
    }
    sentences.push(picker.pick(CLOSERS).replace("{topic}", &topic));

    tokenize(&sentences.join(" "))
}
// ANCHOR_END: answer_tokens

/// The prompt as the answer quotes it: whitespace collapsed, control characters
/// dropped, at most [`MAX_TOPIC_CHARS`] characters, in quotes.
fn topic(prompt: &str) -> String {
    let cleaned: String = prompt
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|character| !character.is_control())
        .collect();
    if cleaned.is_empty() {
        return "your question".to_owned();
    }
    let mut quoted: String = cleaned.chars().take(MAX_TOPIC_CHARS).collect();
    if cleaned.chars().count() > MAX_TOPIC_CHARS {
        quoted.push_str("...");
    }
    format!("\"{quoted}\"")
}

/// Picks deterministically from lists, seeded by the prompt.
struct Picker {
    state: u64,
}

impl Picker {
    fn new(prompt: &str) -> Self {
        // FNV-1a: a tiny, well-known hash that is the same everywhere (unlike
        // `std::collections::hash_map::DefaultHasher`, whose algorithm may change).
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in prompt.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Picker { state: hash }
    }

    /// The next number of a SplitMix64 sequence, reduced below `bound`.
    fn below(&mut self, bound: usize) -> usize {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.state;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^= mixed >> 31;
        // The lists are short, so the modulo bias is negligible.
        (mixed % bound as u64) as usize
    }

    fn pick<'a>(&mut self, list: &[&'a str]) -> &'a str {
        list[self.below(list.len())]
    }
}

/// Splits text into LLM-like tokens. The pieces concatenate back to `text`.
fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        // A word keeps the spaces in front of it, like `" world"` in real tokenizers.
        let spaces = rest.len() - rest.trim_start_matches(' ').len();
        let word_length = rest[spaces..].find(' ').unwrap_or(rest.len() - spaces);
        let (word, next) = rest.split_at(spaces + word_length);
        push_word(word, &mut tokens);
        rest = next;
    }
    tokens
}

/// Pushes the tokens of one word: its body (in two pieces if long), then each
/// trailing punctuation mark on its own.
fn push_word(word: &str, tokens: &mut Vec<String>) {
    let characters: Vec<char> = word.chars().collect();
    let spaces = characters.iter().take_while(|c| **c == ' ').count();
    let punctuation = characters[spaces..]
        .iter()
        .rev()
        .take_while(|c| matches!(c, '.' | ',' | '!' | '?' | ';' | ':'))
        .count();
    let body_end = characters.len() - punctuation;
    let letters = body_end - spaces;
    let mut marks = characters[body_end..].iter().map(char::to_string);
    if letters == 0 {
        // Only punctuation: the spaces go in front of the first mark.
        let first = marks.next().unwrap_or_default();
        tokens.push(characters[..spaces].iter().collect::<String>() + &first);
    } else if letters > 8 {
        // Long words come in two pieces, as subword tokenizers split rarer words.
        let middle = spaces + letters.div_ceil(2);
        tokens.push(characters[..middle].iter().collect());
        tokens.push(characters[middle..body_end].iter().collect());
    } else {
        tokens.push(characters[..body_end].iter().collect());
    }
    tokens.extend(marks);
}

/// Where a resumed stream starts: after the token whose index the client last saw
/// (`Last-Event-ID: K` gives K + 1); 0 without a header or with one that is not a
/// number, read as the hub reads a seq ([`parse_seq`]).
pub fn parse_last_event_id(header: Option<&str>) -> usize {
    header
        .and_then(parse_seq)
        .and_then(|index| usize::try_from(index).ok())
        .map_or(0, |index| index.saturating_add(1))
}

/// One event of a token stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenEvent {
    /// One token of the answer.
    Token {
        /// Its position in the answer, from 0; also the SSE `id`.
        index: usize,
        /// The token text.
        token: String,
    },
    /// The answer is complete.
    Done,
}

#[derive(Serialize)]
struct TokenData<'a> {
    index: usize,
    token: &'a str,
}

impl TokenEvent {
    // ANCHOR: token_to_sse
    /// The event as SSE: `id: 3` and `data: {"index":3,"token":" hello"}`, or
    /// `data: [DONE]` without an id (so the client's last event ID stays on the last
    /// token).
    pub fn to_sse(&self) -> Event {
        match self {
            TokenEvent::Token { index, token } => {
                let data = serde_json::to_string(&TokenData {
                    index: *index,
                    token,
                })
                .expect("a number and a string always serialize");
                Event::new(data).id(index.to_string())
            }
            TokenEvent::Done => Event::new(DONE),
        }
    }
    // ANCHOR_END: token_to_sse
}

// ANCHOR: token_stream
/// The tokens of the answer to `prompt` from `start_index` on, one every `interval`
/// (the first at once), then [`TokenEvent::Done`]. An `interval` of zero sends them
/// as fast as the reader takes them.
///
/// Must be polled inside a Tokio runtime (it uses Tokio's timer).
pub fn token_stream(prompt: &str, start_index: usize, interval: Duration) -> TokenStream {
    TokenStream {
        tokens: answer_tokens(prompt),
        next_index: start_index,
        period: interval,
        ticker: None,
        finished: false,
        stop: None,
    }
}

/// The stream [`token_stream`] returns. `Unpin`, `Send` and `'static`.
pub struct TokenStream {
    tokens: Vec<String>,
    next_index: usize,
    period: Duration,
    /// Created on the first poll, so that building the stream needs no runtime.
    ticker: Option<Interval>,
    finished: bool,
    stop: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl TokenStream {
    /// Ends the stream (without [`TokenEvent::Done`]) as soon as `shutdown` is
    /// triggered; the client can resume after the restart, the answer being the same.
    #[must_use]
    pub fn with_shutdown(mut self, shutdown: &Shutdown) -> Self {
        self.stop = Some(Box::pin(shutdown.wait_owned()));
        self
    }
}

impl Stream for TokenStream {
    type Item = TokenEvent;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<TokenEvent>> {
        let this = self.get_mut();
        if let Some(stop) = &mut this.stop
            && stop.as_mut().poll(context).is_ready()
        {
            this.finished = true;
            this.stop = None;
        }
        if this.finished {
            return Poll::Ready(None);
        }
        if !this.period.is_zero() {
            let period = this.period;
            let ticker = this.ticker.get_or_insert_with(|| {
                let mut ticker = tokio::time::interval(period);
                // After a slow reader, keep the spacing instead of sending a burst.
                ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
                ticker
            });
            if ticker.poll_tick(context).is_pending() {
                return Poll::Pending;
            }
        }
        let event = match this.tokens.get(this.next_index) {
            Some(token) => TokenEvent::Token {
                index: this.next_index,
                token: token.clone(),
            },
            None => {
                this.finished = true;
                TokenEvent::Done
            }
        };
        this.next_index += 1;
        Poll::Ready(Some(event))
    }
}
// ANCHOR_END: token_stream

impl std::fmt::Debug for TokenStream {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("TokenStream")
            .field("tokens", &self.tokens.len())
            .field("next_index", &self.next_index)
            .field("period", &self.period)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;
    use serde_json::{Value, json};

    #[test]
    fn the_same_prompt_gives_the_same_tokens() {
        for prompt in ["what is a websocket?", "", "   ", "héllo 🌍", "a\nb\tc"] {
            assert_eq!(answer_tokens(prompt), answer_tokens(prompt), "{prompt:?}");
        }
    }

    #[test]
    fn answers_are_long_enough_and_mention_the_prompt() {
        let tokens = answer_tokens("how does SSE reconnect");
        assert!(tokens.len() >= 40, "{}", tokens.len());
        let text = tokens.concat();
        assert!(text.contains("\"how does SSE reconnect\""), "{text}");
        assert!(answer_tokens("").concat().contains("your question"));
    }

    #[test]
    fn tokens_look_like_llm_tokens() {
        let tokens = answer_tokens("rust");
        // The first has no leading space, most later ones do, none is empty.
        assert!(!tokens[0].starts_with(' '));
        assert!(tokens.iter().all(|token| !token.is_empty()));
        assert!(tokens.iter().filter(|token| token.starts_with(' ')).count() > tokens.len() / 2);
        assert!(tokens.iter().any(|token| token == "."));
        assert!(tokens.iter().all(|token| !token.ends_with(' ')));
    }

    #[test]
    fn different_prompts_differ() {
        let prompts = [
            "websocket",
            "server-sent events",
            "tokio",
            "axum",
            "warp",
            "x",
        ];
        for (position, first) in prompts.iter().enumerate() {
            for second in &prompts[position + 1..] {
                assert_ne!(answer_tokens(first), answer_tokens(second));
            }
        }
        // Beyond the quoted topic, the sentences themselves vary with the prompt.
        let shapes: std::collections::HashSet<String> = (0..20)
            .map(|number| {
                answer_tokens(&number.to_string())
                    .concat()
                    .replace(&format!("\"{number}\""), "")
            })
            .collect();
        assert!(shapes.len() > 5, "{}", shapes.len());
    }

    #[test]
    fn tokenize_splits_like_a_subword_tokenizer() {
        assert_eq!(
            tokenize("Hello, streaming world."),
            ["Hello", ",", " strea", "ming", " world", "."]
        );
        assert_eq!(tokenize("a  b"), ["a", "  b"]);
        assert_eq!(tokenize("a ?!"), ["a", " ?", "!"]);
        assert_eq!(tokenize("?!"), ["?", "!"]);
    }

    #[test]
    fn long_prompts_are_cut_in_the_answer() {
        let prompt = "word ".repeat(100);
        let text = answer_tokens(&prompt).concat();
        assert!(text.contains("...\""));
        assert!(text.len() < 1000);
    }

    #[test]
    fn last_event_id_gives_the_next_index() {
        assert_eq!(parse_last_event_id(None), 0);
        assert_eq!(parse_last_event_id(Some("")), 0);
        assert_eq!(parse_last_event_id(Some("0")), 1);
        assert_eq!(parse_last_event_id(Some("17")), 18);
        assert_eq!(parse_last_event_id(Some("007")), 8);
        for bad in ["x", "-1", "+1", " 3", "3 ", "1e3", "18446744073709551616"] {
            assert_eq!(parse_last_event_id(Some(bad)), 0, "{bad:?}");
        }
        assert_eq!(
            parse_last_event_id(Some(&usize::MAX.to_string())),
            usize::MAX
        );
    }

    #[test]
    fn sse_shapes() {
        let token = TokenEvent::Token {
            index: 3,
            token: " hello \"x\"".into(),
        }
        .to_sse();
        assert_eq!(token.id.as_deref(), Some("3"));
        assert_eq!(token.event, None);
        assert_eq!(
            serde_json::from_str::<Value>(&token.data).unwrap(),
            json!({"index": 3, "token": " hello \"x\""})
        );
        assert_eq!(
            TokenEvent::Done.to_sse().encode().unwrap(),
            "data: [DONE]\n\n"
        );
    }

    #[tokio::test]
    async fn the_stream_sends_every_token_then_done() {
        let expected = answer_tokens("p");
        let events: Vec<_> = token_stream("p", 0, Duration::ZERO).collect().await;
        assert_eq!(events.len(), expected.len() + 1);
        for (index, token) in expected.iter().enumerate() {
            assert_eq!(
                events[index],
                TokenEvent::Token {
                    index,
                    token: token.clone()
                }
            );
        }
        assert_eq!(events.last(), Some(&TokenEvent::Done));
    }

    #[tokio::test]
    async fn the_stream_resumes_after_the_last_event_id() {
        let expected = answer_tokens("resume me");
        let start = parse_last_event_id(Some("9"));
        let events: Vec<_> = token_stream("resume me", start, Duration::ZERO)
            .collect()
            .await;
        assert_eq!(
            events[0],
            TokenEvent::Token {
                index: 10,
                token: expected[10].clone()
            }
        );
        assert_eq!(events.len(), expected.len() - 10 + 1);
        // Past the end: only Done.
        let events: Vec<_> = token_stream("resume me", expected.len() + 5, Duration::ZERO)
            .collect()
            .await;
        assert_eq!(events, [TokenEvent::Done]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_stream_is_paced() {
        let started = tokio::time::Instant::now();
        let mut stream = token_stream("p", 0, Duration::from_millis(50));
        stream.next().await;
        assert_eq!(started.elapsed(), Duration::ZERO, "the first token at once");
        stream.next().await;
        stream.next().await;
        assert_eq!(started.elapsed(), Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn the_stream_ends_on_shutdown_without_done() {
        let shutdown = Shutdown::new();
        let mut stream = token_stream("p", 0, Duration::from_millis(50)).with_shutdown(&shutdown);
        assert!(matches!(
            stream.next().await,
            Some(TokenEvent::Token { index: 0, .. })
        ));
        shutdown.trigger();
        assert_eq!(stream.next().await, None);
        assert_eq!(stream.next().await, None);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn every_answer_has_at_least_40_tokens_that_join_to_text(prompt in any::<String>()) {
                let tokens = answer_tokens(&prompt);
                prop_assert!(tokens.len() >= 40);
                prop_assert!(tokens.iter().all(|token| !token.is_empty()));
                prop_assert_eq!(&tokens, &answer_tokens(&prompt));
                prop_assert_eq!(tokenize(&tokens.concat()), tokens);
            }
        }
    }
}
