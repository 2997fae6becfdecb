//! A Rust client for openpi's protocol (the same wire format as `openpi_client`'s
//! `WebsocketClientPolicy`): `videovla sim connect` and the server tests use it.

use std::net::TcpStream;
use std::time::Duration;

use anyhow::Context;
use rmpv::Value;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

use super::msgpack::{self, as_ndarray, get, map, NdArray};

pub struct PolicyClient {
    ws: WebSocket<TcpStream>,
    pub metadata: Value,
}

impl PolicyClient {
    /// Connect to `ws://host:port[/path]` and read the metadata frame.
    pub fn connect(url: &str, api_key: Option<&str>) -> anyhow::Result<PolicyClient> {
        let mut req = url.into_client_request().with_context(|| format!("{url:?} is not a ws:// address"))?;
        if let Some(k) = api_key {
            req.headers_mut().insert("Authorization", format!("Api-Key {k}").parse()?);
        }
        let host = req.uri().host().context("the address has no host")?.to_string();
        anyhow::ensure!(req.uri().scheme_str() == Some("ws"), "only ws:// addresses are supported (got {url})");
        let port = req.uri().port_u16().unwrap_or(80);
        let stream = TcpStream::connect((host.as_str(), port))
            .with_context(|| format!("cannot connect to {url}; is `videovla serve` running there?"))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(600)))?;
        let mut cfg = tungstenite::protocol::WebSocketConfig::default();
        cfg.max_message_size = None;
        cfg.max_frame_size = None;
        let (mut ws, _) = tungstenite::client::client_with_config(req, stream, Some(cfg))
            .map_err(|e| anyhow::anyhow!("websocket handshake with {url} failed: {e}"))?;
        let metadata = match ws.read()? {
            Message::Binary(b) => msgpack::decode(&b).map_err(anyhow::Error::msg)?,
            other => anyhow::bail!("expected the server's metadata, got {other:?}"),
        };
        Ok(PolicyClient { ws, metadata })
    }

    /// One lock-step request. A text frame from the server is its error message.
    pub fn infer(&mut self, obs: &Value) -> anyhow::Result<Value> {
        self.ws.send(Message::binary(msgpack::encode(obs)))?;
        loop {
            match self.ws.read()? {
                Message::Binary(b) => return msgpack::decode(&b).map_err(anyhow::Error::msg),
                Message::Text(t) => anyhow::bail!("the policy server refused the request: {}", t.as_str()),
                Message::Close(c) => anyhow::bail!("the policy server closed the connection: {c:?}"),
                _ => continue,
            }
        }
    }

    /// Send a frame message (no reply; see `protocol`).
    pub fn send_frame(&mut self, obs: Value) -> anyhow::Result<()> {
        let mut obs = obs;
        if let Value::Map(kv) = &mut obs {
            kv.push((Value::from("videovla/frame"), Value::Boolean(true)));
        }
        self.ws.send(Message::binary(msgpack::encode(&obs)))?;
        Ok(())
    }

    pub fn close(mut self) {
        self.shutdown();
    }

    /// Send the websocket close frame (the server then sees a clean goodbye).
    pub fn shutdown(&mut self) {
        let _ = self.ws.close(None);
        let _ = self.ws.flush();
    }
}

/// An observation in openpi's LIBERO layout (`observation/image`, `observation/state`, `prompt`).
pub fn libero_observation(image: &image::RgbImage, state: Option<&[f32]>, prompt: &str) -> Value {
    let (w, h) = image.dimensions();
    let mut e = vec![("observation/image", NdArray::from_u8(vec![h as usize, w as usize, 3], image.as_raw().clone()).to_value())];
    if let Some(s) = state {
        e.push(("observation/state", NdArray::from_f32(vec![s.len()], s).to_value()));
    }
    e.push(("prompt", Value::from(prompt)));
    map(e)
}

/// The `actions` array of a reply as rows.
pub fn reply_actions(reply: &Value) -> anyhow::Result<Vec<Vec<f32>>> {
    let a = get(reply, "actions").context("the reply has no `actions`")?;
    let a = as_ndarray(a).context("`actions` is not an array")?.map_err(anyhow::Error::msg)?;
    anyhow::ensure!(a.shape.len() == 2 && a.shape[1] > 0, "`actions` has shape {:?}; expected (horizon, dim)", a.shape);
    let v = a.to_f64();
    Ok(v.chunks(a.shape[1]).map(|r| r.iter().map(|&x| x as f32).collect()).collect())
}
