'use strict';

// Minimal client for /chat/{room}: no framework, so the page works offline and behind any proxy.
(function () {
  const $ = (id) => document.getElementById(id);
  const roomInput = $('room');
  const connectButton = $('connect');
  const messageInput = $('message');
  const sendButton = $('send');
  const log = $('log');
  const status = $('status');
  const backendLabel = $('backend');
  const endpointLabel = $('endpoint');

  let socket = null;

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
    messageInput.disabled = !open;
    sendButton.disabled = !open;
    if (open) messageInput.focus();
  }

  function connect() {
    const room = roomInput.value.trim() || 'lobby';
    const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/chat/' + encodeURIComponent(room);
    endpointLabel.textContent = url;
    append('connecting to ' + url, 'system');
    setState('connecting');

    const ws = new WebSocket(url, ['chat.v2', 'chat.v1']);
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
        append('welcome from backend ' + parsed.backend + ' to room "' + parsed.room + '" (' + parsed.members + ' member' + (parsed.members === 1 ? '' : 's') + ')', 'welcome');
      } else {
        append(event.data);
      }
    };

    ws.onerror = () => append('connection error', 'error');

    ws.onclose = (event) => {
      if (socket === ws) socket = null;
      const reason = event.reason ? ' "' + event.reason + '"' : '';
      append('closed: code ' + event.code + reason + (event.wasClean ? '' : ' (not clean)'), event.code === 1000 ? 'system' : 'error');
      setState('disconnected');
    };
  }

  $('connect-form').addEventListener('submit', (event) => {
    event.preventDefault();
    if (socket) {
      socket.close(1000, 'bye');
    } else {
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

  setState('disconnected');
})();
