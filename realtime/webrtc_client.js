// The Webcam tab's WebRTC client (loaded into the page's <head> by realtime/web_page.py).
//
// camera (getUserMedia, 640x480) -> a canvas that stamps each frame with the time it was
// captured -> RTCPeerConnection -> the server unmasks it (realtime/webrtc.py) -> the returned
// track in a large <video>. Each displayed frame's stamp is read back, so the latency shown is
// glass to glass: from the camera's capture time (requestVideoFrameCallback's captureTime,
// else the moment the page got the frame) to the time the result is composited for display
// (expectedDisplayTime), both on this page's clock: encoding, the network both ways, decoding,
// queueing and inference included. The stamp is a strip of STAMP_CELLS black/white squares in
// the top-left corner: a white and a black reference cell, 16 bits of the clock in ms (mod
// 65536) and a 4-bit check; a frame whose strip does not read back has no latency.
//
// window.realtimeUnmask.start(settings) / .stop() / .samples(): [display time, latency or
// null] per result frame shown, what the benchmark (benchmarks/webrtc_bench.py) collects.
(() => {
  const CELL_PX = 8; // at 640 px wide; scaled with the frame
  const STAMP_CELLS = 22;
  const MAX_SAMPLES = 100000;
  const SEND_AHEAD = 1.5;
  const config = window.REALTIME_UNMASK_RTC || { iceServers: [] };
  let run = null;

  const $ = (id) => document.getElementById(id);
  const say = (text) => { const e = $("rtc-readout"); if (e) e.textContent = text; };

  function checksum(value) {
    return ((value & 15) + ((value >> 4) & 15) + ((value >> 8) & 15) + (value >> 12)) & 15;
  }

  function drawStamp(ctx, value, width) {
    const bits = [1, 0];
    for (let i = 15; i >= 0; i--) bits.push((value >> i) & 1);
    const check = checksum(value);
    for (let i = 3; i >= 0; i--) bits.push((check >> i) & 1);
    const cell = CELL_PX * width / 640;
    bits.forEach((bit, i) => {
      ctx.fillStyle = bit ? "#fff" : "#000";
      ctx.fillRect(i * cell, 0, cell, cell);
    });
  }

  function readStamp(video, ctx) {
    const scale = video.videoWidth / 640;
    ctx.drawImage(video, 0, 0, STAMP_CELLS * CELL_PX * scale, CELL_PX * scale,
                  0, 0, STAMP_CELLS * CELL_PX, CELL_PX);
    const data = ctx.getImageData(0, 0, STAMP_CELLS * CELL_PX, CELL_PX).data;
    const luma = (i) => { // mean green of the cell's central 4x4 pixels
      let sum = 0;
      for (let y = 2; y < 6; y++) for (let x = 2; x < 6; x++) {
        sum += data[4 * (y * STAMP_CELLS * CELL_PX + i * CELL_PX + x) + 1];
      }
      return sum / 16;
    };
    const white = luma(0), black = luma(1);
    if (white - black < 80) return null;
    const bits = [];
    for (let i = 2; i < STAMP_CELLS; i++) bits.push(luma(i) > (white + black) / 2 ? 1 : 0);
    const value = bits.slice(0, 16).reduce((v, b) => (v << 1) | b, 0);
    const check = bits.slice(16).reduce((v, b) => (v << 1) | b, 0);
    return check === checksum(value) ? value : null;
  }

  function percentile(values, q) {
    if (!values.length) return null;
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  }

  // Camera frames onto the canvas, stamped, each pushed into the outgoing track; no faster
  // than SEND_AHEAD times the rate results come back (plus a little), so that neither side
  // spends its CPU encoding and decoding frames the server would only skip.
  function pump(r) {
    const draw = (now, meta) => {
      if (run !== r) return;
      const w = r.camera.videoWidth, h = r.camera.videoHeight;
      // Credit for sendFps frames a second, spent one a frame: a plain minimum interval
      // would round 24 FPS down to every other camera frame (15 FPS).
      r.credit = Math.min(2, r.credit + (now - r.lastAt) * r.sendFps / 1000);
      r.lastAt = now;
      if (w && h && r.credit >= 0.9) {
        r.credit -= 1;
        if (r.canvas.width !== w) { r.canvas.width = w; r.canvas.height = h; }
        r.ctx.drawImage(r.camera, 0, 0, w, h);
        const captured = (meta && (meta.captureTime || meta.expectedDisplayTime)) || now;
        drawStamp(r.ctx, Math.round(captured) & 0xffff, w);
        r.track.requestFrame();
        r.sent++;
      }
      r.camera.requestVideoFrameCallback(draw);
    };
    r.camera.requestVideoFrameCallback(draw);
  }

  // Every displayed result frame: its time and, when its stamp reads, its latency.
  function watch(r) {
    const shown = (now, meta) => {
      if (run !== r) return;
      const at = meta.expectedDisplayTime || now;
      const value = readStamp(r.output, r.readCtx);
      const latency = value === null ? null
        : ((Math.round(at) & 0xffff) - value + 0x10000) & 0xffff;
      r.shown.push([at, latency]);
      if (r.shown.length > MAX_SAMPLES) r.shown.shift();
      r.output.requestVideoFrameCallback(shown);
    };
    r.output.requestVideoFrameCallback(shown);
  }

  function readout(r) {
    const now = performance.now();
    const fps = r.shown.filter(([t]) => t > now - 2000).length / 2;
    r.sendFps = Math.min(60, Math.max(5, SEND_AHEAD * fps + 3));
    const recent = r.shown.slice(-60).map(([, ms]) => ms).filter((ms) => ms !== null);
    const s = r.server;
    let line = `${fps.toFixed(1)} FPS delivered`;
    if (recent.length) {
      line += ` · glass-to-glass ${percentile(recent, 0.5)} ms (p95 ${percentile(recent, 0.95)})`;
    }
    line += ` · ${r.output.videoWidth}x${r.output.videoHeight}`;
    if (s) {
      line += ` · server ${s.busy_ms_p50} ms a frame, ${s.faces} face${s.faces === 1 ? "" : "s"}`;
      line += `, ${s.dropped} stale frames skipped`;
    }
    say(line);
  }

  async function start(settings) {
    await stop();
    const camera = $("rtc-camera"), output = $("rtc-output");
    if (!camera || !output) return;
    say("Starting the camera...");
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({
        video: { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 30 } },
        audio: false });
    } catch (err) {
      say(`No camera: ${err.message}. Allow the camera for this page, or use the fallback below.`);
      return;
    }
    const canvas = document.createElement("canvas");
    const readCanvas = document.createElement("canvas");
    readCanvas.width = STAMP_CELLS * CELL_PX; readCanvas.height = CELL_PX;
    const r = {
      camera, output, stream, canvas, ctx: canvas.getContext("2d"),
      readCtx: readCanvas.getContext("2d", { willReadFrequently: true }),
      pc: new RTCPeerConnection(config), shown: [], sent: 0, sendFps: 60, credit: 1, lastAt: performance.now(),
      server: null, timer: null, started: performance.now() };
    run = r;
    camera.srcObject = stream;
    await camera.play();
    r.track = canvas.captureStream(0).getVideoTracks()[0];
    r.track.contentHint = "detail"; // keep 640x480 when the CPU is busy: lower the rate instead
    pump(r);
    const transceiver = r.pc.addTransceiver(r.track, { direction: "sendrecv" });
    const params = transceiver.sender.getParameters();
    params.degradationPreference = "maintain-resolution";
    transceiver.sender.setParameters(params).catch(() => {});
    const channel = r.pc.createDataChannel("stats");
    channel.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.ended) { stop(); say(message.ended); } else r.server = message;
    };
    r.pc.ontrack = (event) => {
      output.srcObject = event.streams[0] || new MediaStream([event.track]);
      output.play().catch(() => {});
      watch(r);
    };
    r.pc.onconnectionstatechange = () => {
      if (run === r && r.pc.connectionState === "failed") {
        stop();
        say("The video connection failed (a firewall or NAT between here and the server?). " +
            "Start the server with --ice-server, or use the fallback below.");
      }
    };
    await r.pc.setLocalDescription(await r.pc.createOffer());
    await new Promise((resolve) => {
      if (r.pc.iceGatheringState === "complete") return resolve();
      r.pc.addEventListener("icegatheringstatechange", () => {
        if (r.pc.iceGatheringState === "complete") resolve();
      });
    });
    say("Connecting...");
    const response = await fetch("webrtc/offer", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: r.pc.localDescription.sdp, type: r.pc.localDescription.type,
                             settings }) });
    const answer = await response.json();
    if (run !== r) return;
    if (!response.ok) { await stop(); say(answer.error || `The server said ${response.status}.`); return; }
    await r.pc.setRemoteDescription(answer);
    r.timer = setInterval(() => readout(r), 500);
  }

  async function stop() {
    const r = run;
    run = null;
    if (!r) return;
    clearInterval(r.timer);
    r.pc.close();
    r.stream.getTracks().forEach((t) => t.stop());
    if (r.track) r.track.stop();
    r.camera.srcObject = null;
    r.output.srcObject = null;
    say("Stopped.");
    window.realtimeUnmaskLast = r;
  }

  function samples() {
    const r = run || window.realtimeUnmaskLast;
    if (!r) return null;
    return { shown: r.shown, sent: r.sent, server: r.server, now: performance.now(),
             width: r.output.videoWidth, height: r.output.videoHeight };
  }

  // The browser's own view of both directions (what limits the sent rate, the jitter buffer).
  async function rtpStats() {
    const r = run || window.realtimeUnmaskLast;
    if (!r) return null;
    const found = {};
    (await r.pc.getStats()).forEach((s) => {
      if (s.type === "outbound-rtp" && s.kind === "video") {
        found.sent = { frames_encoded: s.framesEncoded, fps: s.framesPerSecond,
                       limited_by: s.qualityLimitationReason, encode_ms_per_frame:
                         s.framesEncoded ? 1000 * s.totalEncodeTime / s.framesEncoded : null };
      }
      if (s.type === "inbound-rtp" && s.kind === "video") {
        found.received = { frames_decoded: s.framesDecoded, frames_dropped: s.framesDropped,
                           fps: s.framesPerSecond, jitter_buffer_ms_per_frame:
                             s.jitterBufferEmittedCount
                               ? 1000 * s.jitterBufferDelay / s.jitterBufferEmittedCount : null };
      }
    });
    return { ...found, frames_pushed: r.sent, send_fps_cap: r.sendFps };
  }

  window.realtimeUnmask = { start, stop, samples, rtpStats };
})();
