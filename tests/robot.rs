//! The robot link end to end over real sockets: the policy server (`videovla::robot::server`)
//! with the tiny fixture model, a real websocket client, raw TCP for the failure cases, and
//! the execution recording with its motion similarity.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::Duration;

use rmpv::Value;
use videovla::model::hub::ModelSource;
use videovla::robot::client::{libero_observation, reply_actions, PolicyClient};
use videovla::robot::msgpack::{self, get, map, NdArray};
use videovla::robot::recording::Recording;
use videovla::robot::server::{Server, ServerConfig, ServerEvent};

fn fixture_model() -> ModelSource {
    ModelSource::Dir(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny_model"))
}

fn start(f: impl FnOnce(&mut ServerConfig)) -> Server {
    let mut cfg = ServerConfig::new(fixture_model());
    cfg.port = 0;
    f(&mut cfg);
    Server::start(cfg, || {}).unwrap()
}

fn url(s: &Server) -> String {
    format!("ws://{}", s.addr())
}

fn scene() -> image::RgbImage {
    image::RgbImage::from_fn(80, 60, |x, y| image::Rgb([(x * 3) as u8, (y * 4) as u8, 90]))
}

fn request(prompt: &str) -> Value {
    libero_observation(&scene(), Some(&[0.1, 0.0, 0.2, 0.0, 0.0, 0.0, 1.0]), prompt)
}

/// Expect the openpi error convention: a text frame, then close 1011. Returns the text.
fn expect_error(ws: &mut tungstenite::WebSocket<TcpStream>) -> String {
    let text = match ws.read().unwrap() {
        tungstenite::Message::Text(t) => t.to_string(),
        other => panic!("expected an error text frame, got {other:?}"),
    };
    match ws.read() {
        Ok(tungstenite::Message::Close(Some(c))) => assert_eq!(u16::from(c.code), 1011),
        other => panic!("expected close 1011, got {other:?}"),
    }
    text
}

fn raw_ws(s: &Server) -> tungstenite::WebSocket<TcpStream> {
    let stream = TcpStream::connect(s.addr()).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let (mut ws, _) = tungstenite::client::client(url(s), stream).unwrap();
    match ws.read().unwrap() {
        tungstenite::Message::Binary(_) => {}
        other => panic!("expected metadata, got {other:?}"),
    }
    ws
}

fn assert_serves(s: &Server) {
    let mut c = PolicyClient::connect(&url(s), None).unwrap();
    let a = reply_actions(&c.infer(&request("pick up the red cube")).unwrap()).unwrap();
    assert_eq!((a.len(), a[0].len()), (6, 7));
}

#[test]
fn metadata_then_actions_imagination_and_timings() {
    let s = start(|_| {});
    let mut c = PolicyClient::connect(&url(&s), None).unwrap();
    assert_eq!(get(&c.metadata, "action_horizon").and_then(|v| v.as_u64()), Some(6));
    assert_eq!(get(&c.metadata, "action_dim").and_then(|v| v.as_u64()), Some(7));
    let r1 = c.infer(&request("pick up the red cube")).unwrap();
    let a = get(&r1, "actions").unwrap();
    let arr = msgpack::as_ndarray(a).unwrap().unwrap();
    assert_eq!(arr.shape, vec![6, 7]);
    assert_eq!(arr.dtype.numpy(), "<f4");
    assert!(arr.to_f64().iter().all(|x| x.is_finite()));
    let ext = get(&r1, "videovla").unwrap();
    let frames = videovla::robot::protocol::frames_from_value(get(ext, "imagination").unwrap()).unwrap();
    let n = get(&c.metadata, "imagination_frames").and_then(|v| v.as_u64()).unwrap() as usize;
    assert_eq!(frames.len(), n);
    assert!(n >= 9);
    assert!(get(get(&r1, "server_timing").unwrap(), "prev_total_ms").is_none());
    // Second call: prev_total_ms appears (as openpi's server does); same seed -> same actions.
    let mut req = request("pick up the red cube");
    if let Value::Map(kv) = &mut req {
        kv.push((Value::from("videovla/seed"), Value::from(7)));
        kv.push((Value::from("videovla/imagination"), Value::Boolean(false)));
    }
    let r2 = c.infer(&req).unwrap();
    assert!(get(get(&r2, "server_timing").unwrap(), "prev_total_ms").is_some());
    assert!(get(get(&r2, "videovla").unwrap(), "imagination").is_none());
    let r3 = c.infer(&req).unwrap();
    assert_eq!(reply_actions(&r2).unwrap(), reply_actions(&r3).unwrap());
}

#[test]
fn healthz_answers_ok_on_the_same_port() {
    let s = start(|_| {});
    let mut t = TcpStream::connect(s.addr()).unwrap();
    t.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut out = String::new();
    t.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    assert!(out.ends_with("\r\n\r\nOK\n"), "{out}");
}

#[test]
fn malformed_msgpack_wrong_dtype_and_text_frames_are_errors_and_the_server_goes_on() {
    let s = start(|_| {});
    let mut ws = raw_ws(&s);
    ws.send(tungstenite::Message::binary(vec![0x92, 0x01])).unwrap();
    assert!(expect_error(&mut ws).contains("malformed msgpack"));

    let mut ws = raw_ws(&s);
    let bad = map(vec![
        ("observation/image", NdArray::new(msgpack::Dtype::I64, vec![4, 4, 3], vec![0; 4 * 4 * 3 * 8]).unwrap().to_value()),
        ("prompt", Value::from("pick")),
    ]);
    ws.send(tungstenite::Message::binary(msgpack::encode(&bad))).unwrap();
    let e = expect_error(&mut ws);
    assert!(e.contains("uint8"), "{e}");

    let mut ws = raw_ws(&s);
    let lying = map(vec![
        ("image", Value::Map(vec![
            (Value::Binary(b"__ndarray__".to_vec()), Value::Boolean(true)),
            (Value::Binary(b"data".to_vec()), Value::Binary(vec![0; 10])),
            (Value::Binary(b"dtype".to_vec()), Value::from("|u1")),
            (Value::Binary(b"shape".to_vec()), Value::Array(vec![Value::from(1u64 << 20), Value::from(1u64 << 20), Value::from(3)])),
        ])),
        ("prompt", Value::from("pick")),
    ]);
    ws.send(tungstenite::Message::binary(msgpack::encode(&lying))).unwrap();
    assert!(expect_error(&mut ws).contains("bytes"));

    let mut ws = raw_ws(&s);
    ws.send(tungstenite::Message::text("{}")).unwrap();
    assert!(expect_error(&mut ws).contains("binary"));
    assert_serves(&s);
}

#[test]
fn oversize_messages_are_refused_with_the_limit() {
    let s = start(|c| c.max_message = 1 << 20);
    let mut ws = raw_ws(&s);
    let big = image::RgbImage::new(1024, 1024); // 3 MiB
    let _ = ws.send(tungstenite::Message::binary(msgpack::encode(&libero_observation(&big, None, "x"))));
    let e = expect_error(&mut ws);
    assert!(e.contains("too large") && e.contains("1 MiB"), "{e}");
    assert_serves(&s);
}

#[test]
fn abrupt_disconnects_leave_the_server_serving() {
    let s = start(|_| {});
    // Mid-request: the socket vanishes while the model runs.
    let mut ws = raw_ws(&s);
    ws.send(tungstenite::Message::binary(msgpack::encode(&request("pick")))).unwrap();
    drop(ws);
    // Mid-handshake: half an HTTP request, then gone.
    let mut t = TcpStream::connect(s.addr()).unwrap();
    t.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nUpg").unwrap();
    drop(t);
    // Half a websocket frame.
    let mut ws = raw_ws(&s);
    ws.get_mut().write_all(&[0x82, 0xfe, 0x10, 0x00, 1, 2, 3, 4, 5]).unwrap();
    drop(ws);
    assert_serves(&s);
    let reasons: Vec<String> = s
        .events()
        .try_iter()
        .filter_map(|e| match e {
            ServerEvent::Disconnected { reason, .. } => Some(reason),
            _ => None,
        })
        .collect();
    assert!(reasons.len() >= 2, "{reasons:?}");
}

#[test]
fn api_key_is_checked() {
    let s = start(|c| c.api_key = Some("sesame".into()));
    let e = PolicyClient::connect(&url(&s), None).err().unwrap();
    assert!(format!("{e:#}").contains("401"), "{e:#}");
    assert!(PolicyClient::connect(&url(&s), Some("wrong")).is_err());
    let mut c = PolicyClient::connect(&url(&s), Some("sesame")).unwrap();
    assert_eq!(reply_actions(&c.infer(&request("pick")).unwrap()).unwrap().len(), 6);
}

#[test]
fn several_clients_share_one_model() {
    let s = start(|_| {});
    let u = url(&s);
    let hs: Vec<_> = (0..3)
        .map(|i| {
            let u = u.clone();
            std::thread::spawn(move || {
                let mut c = PolicyClient::connect(&u, None).unwrap();
                (0..2).map(|_| reply_actions(&c.infer(&request(&format!("pick {i}"))).unwrap()).unwrap().len()).sum::<usize>()
            })
        })
        .collect();
    for h in hs {
        assert_eq!(h.join().unwrap(), 12);
    }
    // A connected but idle client does not hold anybody up.
    let _idle = raw_ws(&s);
    assert_serves(&s);
}

#[test]
fn frame_messages_build_the_execution_timeline_and_its_similarity() {
    let s = start(|c| c.imagination = true);
    let mut c = PolicyClient::connect(&url(&s), None).unwrap();
    c.infer(&request("pick up the red cube")).unwrap();
    for k in 1..=8 {
        let mut f = request("pick up the red cube");
        if let Value::Map(kv) = &mut f {
            kv.push((Value::from("videovla/action_step"), Value::F64(k as f64 / 8.0 * 3.0)));
        }
        c.send_frame(f).unwrap();
    }
    c.infer(&request("pick up the red cube")).unwrap();
    c.close();
    let mut rec = Recording::new(s.image_size, 6);
    let mut closed = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while closed.len() < 2 && std::time::Instant::now() < deadline {
        if let Ok(e) = s.events().recv_timeout(Duration::from_secs(1)) {
            closed.extend(rec.on_event(&e));
        }
    }
    let c0 = &rec.chunks[closed[0]];
    assert_eq!(c0.executed.len(), 1 + 8, "the request, then the 8 streamed frames (the next request is not added again)");
    assert_eq!(c0.executed_actions(6), 3.0);
    // 3 of 6 actions executed -> the imagination is cut half-way (frame 24 of 48 as released).
    let n = c0.prediction.as_ref().unwrap().samples[0].frames.len();
    assert_eq!(c0.imagined_span(6).len(), (n - 1) / 2 + 1);
    assert_eq!(c0.executed[0].position, Some([0.1f32 as f64, 0.0, 0.2f32 as f64]));
    assert!(c0.quality.is_some());
    let dir = tempfile::tempdir().unwrap();
    rec.save_chunk(closed[0], dir.path()).unwrap();
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join("chunk-00000/chunk.json")).unwrap()).unwrap();
    assert_eq!(j["executed_frames"], 9);
    assert!(dir.path().join("chunk-00000/imagined.gif").exists());
}

#[test]
fn stop_closes_open_connections_and_the_port() {
    let mut s = start(|_| {});
    let mut c = PolicyClient::connect(&url(&s), None).unwrap();
    assert_eq!(reply_actions(&c.infer(&request("pick")).unwrap()).unwrap().len(), 6);
    let addr = s.addr();
    s.stop();
    assert!(c.infer(&request("pick")).is_err(), "the open connection is closed");
    assert!(TcpStream::connect(addr).is_err(), "nothing listens any more");
}

/// `sim connect` sends `videovla/seed` per request, so an episode played over the network
/// against `videovla serve` takes exactly the actions the in-process model policy takes.
#[test]
fn an_episode_over_the_network_reproduces_the_in_process_one() {
    use videovla::sim::eval::{run_episode, EpisodeConfig};
    use videovla::sim::model_policy::ModelPolicy;
    use videovla::sim::remote_policy::RemotePolicy;
    use videovla::sim::tasks::{Split, TaskKind};
    use videovla::sim::world::World;
    let s = start(|_| {});
    let ModelSource::Dir(dir) = fixture_model() else { unreachable!() };
    let cfg = EpisodeConfig::default();
    let seed = 1_000_003;
    let mut local = ModelPolicy::load(&dir, cfg.chunk, 0).unwrap();
    let a = run_episode(&mut World::reset(TaskKind::Pick, Split::Train, seed), &mut local, &cfg, |_| {}).unwrap();
    let mut remote = RemotePolicy::connect(&url(&s), None).unwrap();
    let b = run_episode(&mut World::reset(TaskKind::Pick, Split::Train, seed), &mut remote, &cfg, |_| {}).unwrap();
    assert!(a.steps > 0 && remote.requests > 1);
    assert_eq!((a.steps, a.success), (b.steps, b.success));
    assert_eq!(a.actions, b.actions, "the network episode took other actions");
}

/// `sim eval --policy ws://…` evaluates any openpi server closed loop: two jobs, each with its own
/// connection to one `videovla serve`, report the episodes the in-process model reports.
#[test]
fn evaluating_a_policy_server_reports_what_the_in_process_model_does() {
    use videovla::sim::eval::{evaluate, evaluate_parallel, EpisodeConfig};
    use videovla::sim::policy::make_policy;
    use videovla::sim::tasks::Split;
    use videovla::sim::EVAL_SEED_START;
    let mut s = start(|_| {});
    let ModelSource::Dir(dir) = fixture_model() else { unreachable!() };
    let cfg = EpisodeConfig::default();
    let splits = [Split::Train];
    let mut local = make_policy(dir.to_str().unwrap(), 6, 0).unwrap();
    let want = evaluate(local.as_mut(), &splits, 3, EVAL_SEED_START, &cfg, || {}).unwrap();
    let spec = url(&s);
    let mut first = make_policy(&spec, 6, 0).unwrap();
    assert!(first.name().starts_with("remote:ws://"), "{}", first.name());
    let got = evaluate_parallel(2, 1, first.as_mut(), || make_policy(&spec, 6, 0), &splits, 3, EVAL_SEED_START, &cfg, || {}).unwrap();
    assert_eq!(got.episodes, want.episodes, "same episodes, same actions' outcomes, same order");
    assert_eq!(got.results, want.results);
    // Nothing listening: a one-line error naming the address.
    let dead = format!("ws://{}", s.addr());
    s.stop();
    let err = make_policy(&dead, 6, 0).err().expect("no server any more").to_string();
    assert!(err.contains(&format!("cannot connect to {dead}")), "{err}");
}
