//! The app's web page (`crates/app/src/page.html`), driven the way a person uses it:
//! typing into its inputs and clicking its buttons, found by their element ids.
//!
//! | id | what |
//! |---|---|
//! | `#name`, `#connect`, `#disconnect` | join the chat, leave it |
//! | `#state`, `#online` | the chat's connection state, in words, and the online count |
//! | `#messages` | the chat: one `li` per message (`data-seq`, a `b` with the name) and notes |
//! | `#message`, `#send` | write and send a message |
//! | `#prompt`, `#start`, `#stream-state`, `#tokens` | the token stream over `/stream` |
//! | `#mirror-state`, `#mirror` | the read-only chat mirror over `/events` |
//! | `#session`, `#sign-out` | with `--auth`: who is signed in, and signing out |
//!
//! [`AppPage::open`] also installs a small recorder in the page ([`RECORDER`]): every
//! text the three state outputs show, every `alert` call (replaced, so an alert
//! cannot block the browser), and every `EventSource` the page creates from then on,
//! with how many times it opened. A state like "reconnecting" may last a few
//! milliseconds; the recorder keeps it for the test to see afterwards.

use std::time::Duration;

use serde_json::{Value, json};

use crate::driver::{DEFAULT_WAIT, Session};

/// Installed by [`AppPage::open`] once the page has loaded; idempotent.
///
/// `window.__wsse.states[id]` lists the successive texts of `#state`,
/// `#mirror-state` and `#stream-state` (consecutive repeats dropped),
/// `window.__wsse.alerts` the messages of `alert` calls, and
/// `window.__wsse.sources` one record per `EventSource` created after the
/// recorder: `{url, opens, errors, source}`. The page's own `EventSource.CLOSED`
/// and `readyState` keep working: the wrapper is a subclass.
pub const RECORDER: &str = r#"
if (!window.__wsse) {
  const wsse = window.__wsse = { states: {}, alerts: [], sources: [] };
  for (const id of ['state', 'mirror-state', 'stream-state']) {
    const element = document.getElementById(id);
    const seen = wsse.states[id] = [element.textContent];
    new MutationObserver(() => {
      const text = element.textContent;
      if (seen[seen.length - 1] !== text && seen.length < 5000) seen.push(text);
    }).observe(element, { childList: true, characterData: true, subtree: true });
  }
  window.alert = (message) => { wsse.alerts.push(String(message)); };
  const Original = window.EventSource;
  window.EventSource = class extends Original {
    constructor(url, init) {
      super(url, init);
      const record = { url: String(url), opens: 0, errors: 0, source: this };
      wsse.sources.push(record);
      this.addEventListener('open', () => { record.opens += 1; });
      this.addEventListener('error', () => { record.errors += 1; });
    }
  };
}
"#;

/// A chat message as a list of the page shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownMessage {
    /// Its `data-seq`.
    pub seq: u64,
    /// The name in bold.
    pub from: String,
    /// The whole line as text: `#SEQ TIME` then `NAME: CONTENT`.
    pub text: String,
}

/// The app's page in one browser window.
#[derive(Debug)]
pub struct AppPage<'session> {
    /// The browser, for anything the helpers do not cover.
    pub session: &'session Session,
    /// The server's base URL, `http://IP:PORT`.
    pub base_url: String,
}

impl<'session> AppPage<'session> {
    /// Opens `base_url/` in `session` (whatever it showed before), installs the
    /// [`RECORDER`] and waits until the mirror's `/events` is open.
    ///
    /// # Errors
    ///
    /// When the page does not come up.
    pub fn open(session: &'session Session, base_url: &str) -> Result<AppPage<'session>, String> {
        AppPage::open_until(session, base_url, "open")
    }

    /// [`AppPage::open`], waiting until `#mirror-state` shows `mirror_state` instead:
    /// with `--auth` and nobody signed in, the mirror is `waiting for sign-in`.
    ///
    /// # Errors
    ///
    /// When the page does not come up.
    pub fn open_until(
        session: &'session Session,
        base_url: &str,
        mirror_state: &str,
    ) -> Result<AppPage<'session>, String> {
        session.goto(&format!("{base_url}/"))?;
        session.execute(RECORDER, &[])?;
        session.wait_for_text("#mirror-state", mirror_state, DEFAULT_WAIT)?;
        Ok(AppPage {
            session,
            base_url: base_url.to_owned(),
        })
    }

    /// Types `name` into the name box and clicks Connect; waits until the chat is
    /// open and the server's welcome has been shown.
    ///
    /// # Errors
    ///
    /// When the chat does not open within [`DEFAULT_WAIT`].
    pub fn join(&self, name: &str) -> Result<(), String> {
        // Welcome notes only: an error shown before (a refused sign-in) is no welcome.
        let welcome_notes = "return document.querySelectorAll('#messages li.note').length;";
        let notes_before = self.session.execute(welcome_notes, &[])?;
        self.session.clear("#name")?;
        self.session.type_text("#name", name)?;
        self.session.click("#connect")?;
        self.session.wait_for_text("#state", "open", DEFAULT_WAIT)?;
        self.session.wait_for(
            "the welcome note",
            DEFAULT_WAIT,
            "return document.querySelectorAll('#messages li.note').length > arguments[0];",
            &[notes_before],
        )?;
        Ok(())
    }

    /// With `--auth`: whom `#session` shows signed in, or `nobody`.
    ///
    /// # Errors
    ///
    /// When the page cannot be read.
    pub fn signed_in_as(&self) -> Result<String, String> {
        self.session.text("#session")
    }

    /// With `--auth`: clicks Sign out.
    ///
    /// # Errors
    ///
    /// When the button cannot be clicked.
    pub fn sign_out(&self) -> Result<(), String> {
        self.session.click("#sign-out")
    }

    /// Clicks Disconnect.
    ///
    /// # Errors
    ///
    /// When the button cannot be clicked.
    pub fn disconnect(&self) -> Result<(), String> {
        self.session.click("#disconnect")
    }

    /// Types `text` into the message box and clicks Send; waits until the page has
    /// emptied the box (it does once the message is on the socket).
    ///
    /// # Errors
    ///
    /// When the box is disabled (no open chat) or is not emptied.
    pub fn send(&self, text: &str) -> Result<(), String> {
        self.session.type_text("#message", text)?;
        self.session.click("#send")?;
        self.session.wait_for(
            "the message box to empty after Send",
            DEFAULT_WAIT,
            "return document.getElementById('message').value === '';",
            &[],
        )?;
        Ok(())
    }

    /// `#state`: the chat's connection state, in words.
    ///
    /// # Errors
    ///
    /// When the page cannot be read.
    pub fn state(&self) -> Result<String, String> {
        self.session.text("#state")
    }

    /// Waits until `#online` shows `count`.
    ///
    /// # Errors
    ///
    /// After `timeout`, with what it showed.
    pub fn wait_online(&self, count: usize, timeout: Duration) -> Result<(), String> {
        self.session
            .wait_for_text("#online", &count.to_string(), timeout)
    }

    /// The chat messages `#messages` shows, in order.
    ///
    /// # Errors
    ///
    /// When the page cannot be read.
    pub fn chat_messages(&self) -> Result<Vec<ShownMessage>, String> {
        self.messages_in("messages")
    }

    /// The chat messages the `/events` mirror shows, in order.
    ///
    /// # Errors
    ///
    /// When the page cannot be read.
    pub fn mirror_messages(&self) -> Result<Vec<ShownMessage>, String> {
        self.messages_in("mirror")
    }

    fn messages_in(&self, list: &str) -> Result<Vec<ShownMessage>, String> {
        let items = self.session.execute(
            "return [...document.querySelectorAll(`#${arguments[0]} li[data-seq]`)].map((item) =>
               [Number(item.dataset.seq), item.querySelector('b')?.textContent ?? '', item.textContent]);",
            &[json!(list)],
        )?;
        let items = items.as_array().cloned().unwrap_or_default();
        Ok(items
            .iter()
            .map(|item| ShownMessage {
                seq: item[0].as_u64().unwrap_or(0),
                from: item[1].as_str().unwrap_or_default().to_owned(),
                text: item[2].as_str().unwrap_or_default().to_owned(),
            })
            .collect())
    }

    /// The notes (`li` without a `data-seq`) of `#messages`: "you are ada",
    /// "connection closed: ...".
    ///
    /// # Errors
    ///
    /// When the page cannot be read.
    pub fn notes(&self) -> Result<Vec<String>, String> {
        let notes = self.session.execute(
            "return [...document.querySelectorAll('#messages li:not([data-seq])')].map((item) => item.textContent);",
            &[],
        )?;
        Ok(strings(&notes))
    }

    /// Waits until the list `#messages` (`mirror: false`) or `#mirror` shows a
    /// message whose line ends with `from: content`.
    ///
    /// # Errors
    ///
    /// After `timeout`, with the messages shown.
    pub fn wait_for_message(
        &self,
        mirror: bool,
        from: &str,
        content: &str,
        timeout: Duration,
    ) -> Result<ShownMessage, String> {
        let deadline = std::time::Instant::now() + timeout;
        let ending = format!("{from}: {content}");
        loop {
            let shown = if mirror {
                self.mirror_messages()?
            } else {
                self.chat_messages()?
            };
            if let Some(found) = shown
                .iter()
                .find(|message| message.from == from && message.text.ends_with(&ending))
            {
                return Ok(found.clone());
            }
            if std::time::Instant::now() >= deadline {
                let list = if mirror { "#mirror" } else { "#messages" };
                let lines: Vec<&str> = shown.iter().map(|message| message.text.as_str()).collect();
                return Err(format!(
                    "waited {:.1} s for {ending:?} in {list}; it shows {lines:?}",
                    timeout.as_secs_f64()
                ));
            }
            std::thread::sleep(Duration::from_millis(40));
        }
    }

    /// Types `prompt` and clicks Start.
    ///
    /// # Errors
    ///
    /// When the form cannot be used.
    pub fn start_stream(&self, prompt: &str) -> Result<(), String> {
        self.session.clear("#prompt")?;
        self.session.type_text("#prompt", prompt)?;
        self.session.click("#start")
    }

    /// `#tokens`: the answer so far.
    ///
    /// # Errors
    ///
    /// When the page cannot be read.
    pub fn tokens(&self) -> Result<String, String> {
        self.session.text("#tokens")
    }

    /// Every text the output `id` (`state`, `mirror-state` or `stream-state`) showed
    /// since the recorder was installed.
    ///
    /// # Errors
    ///
    /// When the page cannot be read.
    pub fn states_seen(&self, id: &str) -> Result<Vec<String>, String> {
        let seen = self
            .session
            .execute("return window.__wsse.states[arguments[0]];", &[json!(id)])?;
        Ok(strings(&seen))
    }

    /// The messages of every `alert` the page called.
    ///
    /// # Errors
    ///
    /// When the page cannot be read.
    pub fn alerts(&self) -> Result<Vec<String>, String> {
        let alerts = self.session.execute("return window.__wsse.alerts;", &[])?;
        Ok(strings(&alerts))
    }

    /// The `EventSource`s created since the recorder was installed:
    /// `{url, opens, errors, readyState}` each.
    ///
    /// # Errors
    ///
    /// When the page cannot be read.
    pub fn event_sources(&self) -> Result<Vec<Value>, String> {
        let sources = self.session.execute(
            "return window.__wsse.sources.map(({ url, opens, errors, source }) =>
               ({ url, opens, errors, readyState: source.readyState }));",
            &[],
        )?;
        Ok(sources.as_array().cloned().unwrap_or_default())
    }
}

/// The strings of a JSON array (anything else in it is skipped).
fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|item| item.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
