'use strict';

// Minimal client for /chat/{room}: no framework, so the page works offline and behind any proxy.
(function () {
  const $ = (id) => document.getElementById(id);
  const roomInput = $('room');
  const connectButton = $('connect');
  const messageInput = $('message');
  const sendButton = $('send');
  const nameInput = $('name');
  const burstButton = $('burst');
  const log = $('log');
  const status = $('status');
  const backendLabel = $('backend');
  const endpointLabel = $('endpoint');

  let socket = null;
  // The burst in flight, if any: how many were sent and how many came back through the room before the end.
  let burst = null;
  const BurstSize = 30;

  function append(text, kind) {
    const item = document.createElement('li');
    item.className = kind || '';
    const time = document.createElement('time');
    time.textContent = new Date().toLocaleTimeString();
    item.append(time, document.createTextNode(text)); // textContent only: chat text is never parsed as HTML
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }

  function setState(state) {
    status.textContent = state;
    status.className = 'badge ' + ({ connected: 'badge-on', connecting: 'badge-connecting' }[state] || 'badge-off');
    const open = state === 'connected';
    connectButton.textContent = state === 'disconnected' ? 'Connect' : 'Disconnect';
    roomInput.disabled = state !== 'disconnected';
    nameInput.disabled = state !== 'disconnected';
    messageInput.disabled = !open;
    sendButton.disabled = !open;
    burstButton.disabled = !open;
    if (open) messageInput.focus();
  }

  // A token for the name from the demo's /demo-token (a plain HTTP route, outside the gateway's identity policy).
  // Null when no name was given or the endpoint is off: the page then connects anonymously.
  async function fetchToken(name) {
    if (!name) return null;
    try {
      const response = await fetch('/demo-token?name=' + encodeURIComponent(name), { cache: 'no-store' });
      if (!response.ok) {
        append('no token for "' + name + '": ' + response.status + ' ' + (await response.text()).trim() + '; connecting anonymously', 'error');
        return null;
      }
      const body = await response.json();
      append('got a demo token for "' + name + '", valid ' + body.expires_in + ' s (the gateway closes the tunnel when it expires)', 'system');
      return body.access_token;
    } catch (error) {
      append('no token: ' + error + '; connecting anonymously', 'error');
      return null;
    }
  }

  async function connect() {
    const room = roomInput.value.trim() || 'lobby';
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat/' + encodeURIComponent(room);
    endpointLabel.textContent = url;
    setState('connecting');
    const token = await fetchToken(nameInput.value.trim());
    // Browsers cannot set Authorization on a WebSocket: the token rides in the query, which the gateway takes out
    // before the backend sees the request (Identity QueryToken: Remove).
    append('connecting to ' + url + (token ? '?access_token=…' : ''), 'system');

    const ws = new WebSocket(token ? url + '?access_token=' + encodeURIComponent(token) : url, ['chat.v2', 'chat.v1']);
    socket = ws;

    ws.onopen = () => {
      setState('connected');
      append('connected' + (ws.protocol ? ' (subprotocol ' + ws.protocol + ')' : '') + (ws.extensions ? ' [' + ws.extensions + ']' : ''), 'system');
    };

    ws.onmessage = (event) => {
      if (typeof event.data !== 'string') return;
      let parsed = null;
      try { parsed = JSON.parse(event.data); } catch { /* plain chat text */ }
      if (parsed && parsed.type === 'welcome') {
        backendLabel.textContent = parsed.backend;
        const who = parsed.user ? ' as "' + parsed.user + '"' : ' (anonymous)';
        append('welcome from backend ' + parsed.backend + ' to room "' + parsed.room + '"' + who + ' (' + parsed.members + ' member' + (parsed.members === 1 ? '' : 's') + ')', 'welcome');
      } else if (burst && event.data.startsWith(burst.tag)) {
        burst.echoed++; // counted, not listed: thirty lines would bury the outcome
      } else {
        append(event.data);
      }
    };

    ws.onerror = () => append('connection error', 'error');

    ws.onclose = (event) => {
      if (socket === ws) socket = null;
      if (burst) {
        // The messages within the limit did reach the room (other tabs show them); the gateway's Close can overtake
        // their echoes to this tab, so the count here may be lower, often 0.
        append('burst: sent ' + burst.sent + ', ' + burst.echoed + ' echoed back to this tab before the close (other tabs in the room see what passed)', 'system');
        clearTimeout(burst.timer);
        burst = null;
      }
      const reason = event.reason ? ' "' + event.reason + '"' : '';
      append('closed: code ' + event.code + reason + (event.wasClean ? '' : ' (not clean)'), event.code === 1000 ? 'system' : 'error');
      setState('disconnected');
    };
  }

  $('connect-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (socket) {
      socket.close(1000, 'bye');
    } else if (status.textContent !== 'connecting') { // not while the token is being fetched
      connect();
    }
  });

  $('send-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const text = messageInput.value;
    if (!text || !socket || socket.readyState !== WebSocket.OPEN) return;
    socket.send(text);
    messageInput.value = '';
  });

  // Sends BurstSize messages in one go, more than the demo policy's burst (10), so the gateway's rate limit acts:
  // with Action Close the tunnel ends with 1008 "rate limit exceeded", shown by onclose with what came back.
  burstButton.addEventListener('click', () => {
    if (!socket || socket.readyState !== WebSocket.OPEN || burst) return;
    const ws = socket;
    burst = { tag: 'burst#' + Date.now().toString(36) + ' ', sent: 0, echoed: 0, timer: 0 };
    for (let i = 1; i <= BurstSize; i++) {
      ws.send(burst.tag + i + '/' + BurstSize);
      burst.sent++;
    }
    append('burst: sent ' + BurstSize + ' messages at once', 'system');
    // No limit on the route (or a generous one): say so instead of waiting for a close that never comes.
    const current = burst;
    current.timer = setTimeout(() => {
      if (burst === current) {
        append('burst: ' + current.echoed + ' of ' + current.sent + ' came back and the connection is still open (no limit reached)', 'system');
        burst = null;
      }
    }, 3000);
  });

  setState('disconnected');
})();
