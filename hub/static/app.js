// slot-agent hub dashboard: a subscriber of /ws/client (docs/protocol.md §5).
//
// Plain browser JavaScript, no build step and no libraries, so the page works offline from the
// hub alone. Everything shown comes from the hub: the `snapshot` after `authOk` (and after every
// `getState`), then live `event`, `terminal`, `alertAck`, `actionAck` and `actionResult`
// messages. Text from the wire is only ever written with textContent, never as HTML.
"use strict";

(function () {
  const PROTOCOL = 1;
  const TOKEN_KEY = "slot-hub-token";
  const FEED_LIMIT = 500;             // rows kept in the live feed
  const CHART_MINUTES = 60;           // coin-in chart window, like snapshot.coinInPerMinute
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 30000;
  const PING_EVERY_MS = 15000;        // application ping (§8): browsers cannot see WS pings
  const SILENCE_LIMIT_MS = 45000;     // no frame at all for this long: the hub is gone
  const REFRESH_EVERY_MS = 30000;     // getState when the live stream cannot keep a view current
  const ACTION_TTL_MS = 120000;       // expiresAt of the actions this page sends
  const ACTIONS_KEPT = 300;           // action records remembered for the status column
  const CHANNELS = ["game", "cash", "alerts", "system", "player"];
  // "All clear" alerts need no acknowledgement (protocol.md §5; api/wire.py INFORMATIONAL_ALERTS).
  const INFORMATIONAL_ALERTS = new Set(["doorClosed", "cashboxInstalled", "powerRestored", "machineLinkUp", "deviceOnline"]);

  // ---- state ---------------------------------------------------------------------------

  const state = {
    token: null,
    ws: null,
    conn: "disconnected",
    attempt: 0,                 // reconnect attempts since the last authOk
    reconnectTimer: null,
    countdownTimer: null,
    refusal: null,
    pendingAcks: new Map(),     // ack request id -> alert eventId
    pingTimer: null,
    refreshTimer: null,
    lastFrameAt: 0,
    authenticated: false,
    role: null,
    name: null,
    requestSeq: 0,
    terminals: new Map(),       // terminalId -> snapshot.terminals[] entry
    alerts: new Map(),          // eventId -> alert event frame (unacknowledged)
    feedIds: new Set(),         // ids of the events in the feed, for de-duplication
    coinIn: new Map(),          // minute start (ms since epoch) -> cents
    actions: new Map(),         // actionId -> {terminalId, action, status, error}
    lastActionOf: new Map(),    // terminalId -> actionId (the one whose status the row shows)
  };

  const $ = (id) => document.getElementById(id);
  const el = {};

  function nextId(prefix) {
    state.requestSeq += 1;
    const rand = Math.random().toString(36).slice(2, 8);
    return `${prefix}-${Date.now().toString(36)}-${state.requestSeq}-${rand}`;
  }

  // ---- formatting ----------------------------------------------------------------------

  /** Integer minor units (cents) -> "1,234.56"; anything else -> "". */
  function formatMoney(cents) {
    if (typeof cents !== "number" || !Number.isFinite(cents) || !Number.isInteger(cents)) {
      return "";
    }
    const sign = cents < 0 ? "-" : "";
    const abs = Math.abs(cents);
    const units = Math.floor(abs / 100).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
    const minor = String(abs % 100).padStart(2, "0");
    return `${sign}${units}.${minor}`;
  }

  /** "2026-05-11T11:10:00.123Z" -> "11:10:00.123" (UTC, as on the wire). */
  function formatTime(ts) {
    if (typeof ts !== "string") return "";
    const m = /T(\d{2}:\d{2}:\d{2}(?:\.\d{1,3})?)/.exec(ts);
    return m ? m[1] : ts;
  }

  function formatDateTime(ts) {
    if (typeof ts !== "string") return "";
    const m = /^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})/.exec(ts);
    return m ? `${m[1]} ${m[2]}` : ts;
  }

  /** The interesting fields of an event's data, compactly: meters and money are elsewhere. */
  function describeData(data) {
    if (!data || typeof data !== "object") return "";
    const parts = [];
    for (const [key, value] of Object.entries(data)) {
      if (key === "amount" || key === "meters") continue;
      let text;
      if (value === null || typeof value !== "object") {
        text = String(value);
      } else {
        text = JSON.stringify(value);
      }
      if (text.length > 60) text = text.slice(0, 57) + "…";
      parts.push(`${key}=${text}`);
    }
    return parts.join("  ");
  }

  function minuteStart(ms) {
    return Math.floor(ms / 60000) * 60000;
  }

  // ---- connection ----------------------------------------------------------------------

  /** The badge (announced) holds the state word; the detail (a countdown) is not announced. */
  function setConn(conn, detail) {
    if (state.conn !== conn || el.conn.textContent !== conn) {
      el.conn.dataset.state = conn;
      el.conn.textContent = conn;
    }
    state.conn = conn;
    el.connDetail.textContent = detail || "";
  }

  function hubUrl() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/ws/client`;
  }

  function send(message) {
    const ws = state.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(message));
    return true;
  }

  function connect() {
    cancelReconnect();
    if (!state.token) return;
    setConn(state.attempt === 0 ? "connecting" : "reconnecting", state.attempt ? `attempt ${state.attempt + 1}` : "");
    state.authenticated = false;
    let ws;
    try {
      ws = new WebSocket(hubUrl());
    } catch (err) {
      scheduleReconnect(String(err));
      return;
    }
    state.ws = ws;
    ws.onopen = () => {
      if (state.ws !== ws) return;
      setConn("authenticating");
      state.lastFrameAt = Date.now();
      // Browsers cannot set an Authorization header: `auth` is the first frame (§5).
      ws.send(JSON.stringify({ type: "auth", token: state.token, protocol: PROTOCOL }));
    };
    ws.onmessage = (ev) => {
      if (state.ws !== ws) return;
      state.lastFrameAt = Date.now();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch (err) {
        status(`Ignored a frame that is not JSON: ${String(err)}`);
        return;
      }
      if (msg && typeof msg === "object") handleMessage(msg);
    };
    ws.onclose = (ev) => {
      if (state.ws !== ws) return;
      state.ws = null;
      stopTimers();
      onClosed(ev.code, ev.reason);
    };
    ws.onerror = () => {
      // A close event always follows; it decides what to do.
    };
  }

  function onClosed(code, reason) {
    const wasAuthenticated = state.authenticated;
    state.authenticated = false;
    if (!state.token) {
      setConn("disconnected");
      return;
    }
    // 1008 before authOk: the hub refused the token (§5 auth). Do not retry with it.
    if (code === 1008 && !wasAuthenticated) {
      refuse(state.refusal || `The hub refused the token${reason ? ` (${reason})` : ""}.`);
      return;
    }
    if (code === 4003) {
      refuse(`The hub does not speak protocol version ${PROTOCOL}${reason ? ` (${reason})` : ""}.`);
      return;
    }
    // 4001 (slow consumer) and 1001 (hub restarting): reconnect and take a fresh snapshot.
    scheduleReconnect(reason || `closed with ${code}`);
  }

  function scheduleReconnect(why) {
    cancelReconnect();
    const exp = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** state.attempt);
    const delay = Math.round(exp / 2 + Math.random() * (exp / 2));   // "equal jitter"
    state.attempt += 1;
    const until = Date.now() + delay;
    const tick = () => {
      const left = Math.max(0, Math.ceil((until - Date.now()) / 1000));
      setConn("reconnecting", `retry in ${left} s`);
    };
    tick();
    status(`Connection lost (${why}); retrying.`);
    if (!el.login.hidden) {
      el.loginError.textContent = `Cannot reach the hub (${why}); retrying in the background.`;
    }
    updateControls();
    state.countdownTimer = setInterval(tick, 1000);
    state.reconnectTimer = setTimeout(connect, delay);
  }

  function cancelReconnect() {
    clearTimeout(state.reconnectTimer);
    clearInterval(state.countdownTimer);
    state.reconnectTimer = null;
    state.countdownTimer = null;
  }

  function refuse(message) {
    cancelReconnect();
    state.refusal = null;
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    setConn("refused");
    showLogin(message);
  }

  function startTimers() {
    stopTimers();
    state.pingTimer = setInterval(() => {
      if (Date.now() - state.lastFrameAt > SILENCE_LIMIT_MS && state.ws) {
        // The TCP connection may look open while the hub is gone. Its closing handshake
        // could hang as long, so let go of it at once and reconnect.
        const ws = state.ws;
        state.ws = null;
        stopTimers();
        ws.close(4000, "no answer from the hub");
        onClosed(4000, "no answer from the hub");
        return;
      }
      send({ type: "ping", id: nextId("p") });
    }, PING_EVERY_MS);
    state.refreshTimer = setInterval(() => {
      // The chart and alert list follow `game` and `alerts` events; without those
      // subscriptions they are kept current from fresh snapshots instead.
      if (!isChecked("game") || !isChecked("alerts")) requestState();
    }, REFRESH_EVERY_MS);
  }

  function stopTimers() {
    clearInterval(state.pingTimer);
    clearInterval(state.refreshTimer);
    state.pingTimer = null;
    state.refreshTimer = null;
  }

  function requestState() {
    send({ type: "getState", id: nextId("g") });
  }

  // ---- messages ------------------------------------------------------------------------

  function handleMessage(msg) {
    switch (msg.type) {
      case "authOk": return onAuthOk(msg);
      case "snapshot": return onSnapshot(msg);
      case "subscribed": return onSubscribed(msg);
      case "event": return onEvent(msg, true);
      case "terminal": return onTerminal(msg.terminal);
      case "alertAck": return onAlertAck(msg);
      case "actionAck": return onActionAck(msg);
      case "actionResult": return onActionResult(msg);
      case "error": return onError(msg);
      case "ping": send({ type: "pong", id: msg.id }); return;
      case "pong": return;
      default: return;   // unknown types are ignored (§10 forward compatibility)
    }
  }

  function onAuthOk(msg) {
    state.authenticated = true;
    state.attempt = 0;
    state.role = msg.role;
    state.name = msg.name;
    setConn("connected");
    el.role.hidden = false;
    el.role.textContent = `${msg.name || "?"} (${msg.role})`;
    el.role.dataset.role = msg.role;
    status("");
    hideLogin();
    // After authOk a client has no filter (§5): one filter per checked channel.
    delete el.filters.dataset.subscribed;
    for (const channel of CHANNELS) {
      if (isChecked(channel)) send({ type: "subscribe", id: nextId("s"), channels: [channel] });
    }
    startTimers();
    updateControls();
  }

  /** Mirror the hub's view of our subscription, so people (and tests) can see it took effect. */
  function onSubscribed(msg) {
    if (!Array.isArray(msg.filters)) return;
    const channels = new Set();
    let everything = false;
    for (const f of msg.filters) {
      const list = Array.isArray(f.channels) ? f.channels : [];
      if (list.length === 0) everything = true;
      for (const c of list) channels.add(c);
    }
    const active = everything ? [...CHANNELS] : [...channels].sort();
    el.filters.dataset.subscribed = active.join(",");
  }

  function onSnapshot(msg) {
    if (Array.isArray(msg.terminals)) {
      const seen = new Set();
      for (const t of msg.terminals) {
        if (t && typeof t.terminalId === "string") {
          state.terminals.set(t.terminalId, t);
          seen.add(t.terminalId);
        }
      }
      // A snapshot lists every terminal of our filters; a filter-less view sees them all.
      for (const id of [...state.terminals.keys()]) {
        if (!seen.has(id)) state.terminals.delete(id);
      }
      renderTerminals();
    }
    if (Array.isArray(msg.alerts)) {
      state.alerts.clear();
      for (const a of msg.alerts) if (a && a.id) state.alerts.set(a.id, a);
      renderAlerts();
    }
    if (Array.isArray(msg.recent)) {
      // Newest first on the wire; add oldest first so the newest ends on top.
      for (const frame of [...msg.recent].reverse()) onEvent(frame, false);
    }
    if (Array.isArray(msg.coinInPerMinute)) {
      state.coinIn.clear();
      for (const entry of msg.coinInPerMinute) {
        const t = Date.parse(entry.minute);
        if (Number.isFinite(t) && Number.isInteger(entry.amount)) {
          state.coinIn.set(minuteStart(t), entry.amount);
        }
      }
      renderChart();
    }
  }

  function onEvent(frame, live) {
    if (!frame || typeof frame.id !== "string" || state.feedIds.has(frame.id)) return;
    if (frame.channel === "alerts" && live && !INFORMATIONAL_ALERTS.has(frame.event)) {
      state.alerts.set(frame.id, frame);
      renderAlerts();
    }
    if (live && frame.event === "betPlaced" && frame.data && Number.isInteger(frame.data.amount)) {
      const t = Date.parse(frame.timestamp);
      if (Number.isFinite(t)) {
        const key = minuteStart(t);
        state.coinIn.set(key, (state.coinIn.get(key) || 0) + frame.data.amount);
        renderChart();
      }
    }
    addFeedRow(frame);
  }

  function onTerminal(t) {
    if (!t || typeof t.terminalId !== "string") return;
    const before = state.terminals.get(t.terminalId);
    state.terminals.set(t.terminalId, t);
    renderTerminal(t);
    renderTerminalCount();
    // Without the alerts subscription, a new unacknowledged alert only shows as a count:
    // fetch the list so the panel stays true.
    if (!isChecked("alerts") && before && t.unackedAlerts > before.unackedAlerts) requestState();
  }

  function onAlertAck(msg) {
    for (const [requestId, eventId] of state.pendingAcks) {
      if (eventId === msg.eventId) state.pendingAcks.delete(requestId);
    }
    if (state.alerts.delete(msg.eventId)) renderAlerts();
    status(`Alert ${msg.eventId} acknowledged by ${msg.by}.`);
  }

  /** Remember an action; only the latest few hundred are kept (rows show the last one). */
  function rememberAction(id, rec) {
    state.actions.set(id, rec);
    state.lastActionOf.set(rec.terminalId, id);
    while (state.actions.size > ACTIONS_KEPT) {
      const oldest = state.actions.keys().next().value;
      state.actions.delete(oldest);
    }
  }

  function actionRecord(msg) {
    let rec = state.actions.get(msg.id);
    if (!rec && typeof msg.terminalId === "string") {
      // An action sent by another operator: show it too (they all see the floor).
      rec = { terminalId: msg.terminalId, action: msg.action || "action", status: "", error: "" };
      rememberAction(msg.id, rec);
    }
    return rec;
  }

  function onActionAck(msg) {
    const rec = actionRecord(msg);
    if (!rec) return;
    if (rec.done) return;   // a late ack never overwrites a result
    rec.status = msg.status;
    rec.error = msg.error || "";
    renderActionStatus(rec.terminalId);
  }

  function onActionResult(msg) {
    const rec = actionRecord(msg);
    if (!rec) return;
    rec.status = msg.status;
    rec.error = msg.error || "";
    rec.done = true;
    renderActionStatus(rec.terminalId);
    updateControls();
  }

  function onError(msg) {
    const text = `${msg.code}: ${msg.message || ""}`.trim();
    if (!state.authenticated && (msg.code === "unauthorized" || msg.code === "forbidden")) {
      // The close (1008) follows; remember why for the login form.
      state.refusal = msg.code === "forbidden"
        ? "This token may not open a dashboard (it is not a viewer or operator token)."
        : "The hub refused this token: it is unknown or has been revoked.";
      return;
    }
    if (msg.id && state.actions.has(msg.id)) {
      const rec = state.actions.get(msg.id);
      rec.status = "refused";
      rec.error = text;
      rec.done = true;
      renderActionStatus(rec.terminalId);
      updateControls();
      return;
    }
    if (msg.id && state.pendingAcks.has(msg.id)) {
      const eventId = state.pendingAcks.get(msg.id);
      state.pendingAcks.delete(msg.id);
      if (msg.code === "duplicate" || msg.code === "not_found") {
        // Already acknowledged elsewhere, or gone: it is not open any more.
        state.alerts.delete(eventId);
      } else {
        const button = el.alerts.querySelector(`li[data-alert-id="${CSS.escape(eventId)}"] button`);
        if (button) button.disabled = false;
      }
      renderAlerts();
    }
    status(`The hub answered: ${text}`);
  }

  // ---- rendering: terminals ------------------------------------------------------------

  function cell(row, field) {
    return row.querySelector(`[data-field="${field}"]`);
  }

  function terminalRow(id) {
    let row = el.terminalsBody.querySelector(`tr[data-terminal="${CSS.escape(id)}"]`);
    if (row) return row;
    row = document.createElement("tr");
    row.dataset.terminal = id;
    const fields = ["terminalId", "online", "link", "locked", "lastEvent", "coinInToday", "coinOutToday", "actions"];
    for (const f of fields) {
      const td = document.createElement(f === "terminalId" ? "th" : "td");
      if (f === "terminalId") {
        td.scope = "row";
        td.className = "terminal-id";
      }
      if (f === "coinInToday" || f === "coinOutToday") td.className = "num money";
      if (f === "online" || f === "link" || f === "locked") td.className = "state";
      if (f === "lastEvent") td.className = "last-event";
      if (f === "actions") td.className = "actions";
      td.dataset.field = f;
      row.appendChild(td);
    }
    const actions = cell(row, "actions");
    for (const [action, label, cls] of [["lock", "Lock", "danger"], ["unlock", "Unlock", ""]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = label;
      if (cls) b.className = cls;
      b.dataset.action = action;
      b.setAttribute("aria-label", `${label} ${id}`);
      b.addEventListener("click", () => sendAction(id, action));
      actions.appendChild(b);
    }
    const st = document.createElement("span");
    st.className = "action-status";
    st.dataset.field = "actionStatus";
    st.setAttribute("aria-live", "polite");
    actions.appendChild(st);
    // Keep rows sorted by terminal id.
    const after = [...el.terminalsBody.children].find((r) => r.dataset.terminal > id);
    el.terminalsBody.insertBefore(row, after || null);
    return row;
  }

  function setState(td, value) {
    td.dataset.value = value;
    td.textContent = value;
  }

  function renderTerminal(t) {
    const row = terminalRow(t.terminalId);
    cell(row, "terminalId").textContent = t.terminalId;
    const online = cell(row, "online");
    setState(online, t.online ? "online" : "offline");
    online.title = t.since ? `since ${formatDateTime(t.since)} UTC` : "never seen";
    setState(cell(row, "link"), t.link === "up" || t.link === "down" ? t.link : "unknown");
    setState(cell(row, "locked"), t.locked === true ? "locked" : t.locked === false ? "unlocked" : "unknown");
    const last = cell(row, "lastEvent");
    last.textContent = "";
    if (t.lastEvent) {
      last.append(String(t.lastEvent.event));
      const when = document.createElement("span");
      when.className = "when";
      when.textContent = formatDateTime(t.lastEvent.timestamp);
      last.appendChild(when);
    } else {
      last.textContent = "—";
    }
    cell(row, "coinInToday").textContent = formatMoney(t.coinInToday);
    cell(row, "coinOutToday").textContent = formatMoney(t.coinOutToday);
    renderActionStatus(t.terminalId);
  }

  function renderTerminals() {
    for (const row of [...el.terminalsBody.children]) {
      if (!state.terminals.has(row.dataset.terminal)) row.remove();
    }
    for (const t of state.terminals.values()) renderTerminal(t);
    renderTerminalCount();
    updateControls();
  }

  function renderTerminalCount() {
    const all = state.terminals.size;
    let online = 0;
    for (const t of state.terminals.values()) if (t.online) online += 1;
    el.terminalsCount.textContent = all ? `${online} of ${all} online` : "";
    el.terminalsEmpty.hidden = all > 0;
  }

  const STATUS_WORDS = {
    pending: "pending…", sent: "sent", queued: "queued (terminal offline)", accepted: "accepted",
    rejected: "rejected", succeeded: "succeeded", failed: "failed", expired: "expired",
    refused: "refused",
  };

  function renderActionStatus(terminalId) {
    const row = el.terminalsBody.querySelector(`tr[data-terminal="${CSS.escape(terminalId)}"]`);
    if (!row) return;
    const span = cell(row, "actionStatus");
    const id = state.lastActionOf.get(terminalId);
    const rec = id && state.actions.get(id);
    if (!rec) {
      span.textContent = "";
      delete span.dataset.status;
      return;
    }
    const word = STATUS_WORDS[rec.status] || rec.status;
    span.dataset.status = rec.status;
    span.textContent = `${rec.action}: ${word}${rec.error ? ` — ${rec.error}` : ""}`;
  }

  function actionInFlight(terminalId) {
    const id = state.lastActionOf.get(terminalId);
    const rec = id && state.actions.get(id);
    return Boolean(rec && !rec.done && rec.mine);
  }

  function sendAction(terminalId, action) {
    if (state.role !== "operator" || actionInFlight(terminalId)) return;
    const id = nextId("web");
    const message = {
      type: "action", id, terminalId, action, params: {},
      expiresAt: new Date(Date.now() + ACTION_TTL_MS).toISOString(),
    };
    const rec = { terminalId, action, status: "pending", error: "", mine: true };
    rememberAction(id, rec);
    if (!send(message)) {
      rec.status = "failed";
      rec.error = "not connected";
      rec.done = true;
    }
    renderActionStatus(terminalId);
    updateControls();
  }

  /** Buttons reflect what the hub would allow: operators only, connected, one action at a time. */
  function updateControls() {
    const canAct = state.authenticated && state.role === "operator";
    for (const row of el.terminalsBody.children) {
      const busy = actionInFlight(row.dataset.terminal);
      for (const b of row.querySelectorAll("button[data-action]")) {
        b.disabled = !canAct || busy;
        b.title = canAct ? "" : state.role === "viewer" ? "Viewers cannot send actions" : "Not connected";
      }
    }
    for (const b of el.alerts.querySelectorAll("button[data-ack]")) {
      b.disabled = !canAct || b.dataset.sent === "1";
      b.title = canAct ? "" : state.role === "viewer" ? "Viewers cannot acknowledge alerts" : "Not connected";
    }
  }

  // ---- rendering: alerts ---------------------------------------------------------------

  const CRITICAL = new Set(["bypassAttempt", "meterRollback", "memoryError", "dataGap", "deviceOffline", "powerLost", "outboxFault"]);

  function renderAlerts() {
    const list = [...state.alerts.values()].sort((a, b) => alertOrder(b) - alertOrder(a));
    const existing = new Map();
    for (const li of el.alerts.children) existing.set(li.dataset.alertId, li);
    const wanted = new Set(list.map((a) => a.id));
    for (const [id, li] of existing) if (!wanted.has(id)) li.remove();
    let previous = null;
    for (const a of list) {
      let li = existing.get(a.id);
      if (!li) li = alertItem(a);
      const target = previous ? previous.nextSibling : el.alerts.firstChild;
      if (target !== li) el.alerts.insertBefore(li, target);
      previous = li;
    }
    el.alertsCount.textContent = String(list.length);
    el.alertsEmpty.hidden = list.length > 0;
    updateControls();
  }

  function alertOrder(frame) {
    const t = Date.parse(frame.timestamp);
    return Number.isFinite(t) ? t : 0;
  }

  function alertItem(a) {
    const li = document.createElement("li");
    li.dataset.alertId = a.id;
    li.dataset.terminal = a.terminalId;
    li.dataset.event = a.event;
    li.dataset.severity = CRITICAL.has(a.event) ? "critical" : "warning";
    const title = document.createElement("span");
    title.className = "alert-title";
    title.textContent = `${a.terminalId} · ${a.event}`;
    const meta = document.createElement("span");
    meta.className = "alert-meta";
    const details = describeData(a.data);
    meta.textContent = `${formatDateTime(a.timestamp)} UTC${details ? ` · ${details}` : ""}`;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Acknowledge";
    button.dataset.ack = a.id;
    button.setAttribute("aria-label", `Acknowledge ${a.event} on ${a.terminalId}`);
    button.addEventListener("click", () => acknowledge(a.id, button));
    li.append(title, button, meta);
    return li;
  }

  function acknowledge(eventId, button) {
    if (state.role !== "operator") return;
    const id = nextId("ack");
    state.pendingAcks.set(id, eventId);
    if (send({ type: "ack", id, eventId })) {
      button.disabled = true;
      button.dataset.sent = "1";
      button.textContent = "Acknowledging…";
    }
  }

  // ---- rendering: feed -----------------------------------------------------------------

  function addFeedRow(frame) {
    state.feedIds.add(frame.id);
    const tr = document.createElement("tr");
    tr.dataset.eventId = frame.id;
    tr.dataset.channel = frame.channel;
    tr.dataset.terminal = frame.terminalId;
    tr.dataset.event = frame.event;
    tr.hidden = !isChecked(frame.channel);

    const time = document.createElement("td");
    time.className = "time";
    time.textContent = formatTime(frame.timestamp);
    time.title = String(frame.timestamp);

    const chanCell = document.createElement("td");
    const chip = document.createElement("span");
    chip.className = "chan";
    chip.dataset.channel = frame.channel;
    chip.textContent = frame.channel;
    chanCell.appendChild(chip);

    const term = document.createElement("td");
    term.className = "terminal-id";
    term.textContent = frame.terminalId;

    const name = document.createElement("td");
    name.textContent = frame.event;

    const amount = document.createElement("td");
    amount.className = "num money";
    amount.dataset.field = "amount";
    amount.textContent = frame.data ? formatMoney(frame.data.amount) : "";

    const details = document.createElement("td");
    details.className = "data";
    details.textContent = describeData(frame.data);

    tr.append(time, chanCell, term, name, amount, details);
    el.feedBody.insertBefore(tr, el.feedBody.firstChild);
    while (el.feedBody.children.length > FEED_LIMIT) {
      const old = el.feedBody.lastElementChild;
      state.feedIds.delete(old.dataset.eventId);
      old.remove();
    }
    renderFeedCount();
  }

  function renderFeedCount() {
    let shown = 0;
    for (const tr of el.feedBody.children) if (!tr.hidden) shown += 1;
    el.feedCount.textContent = `${shown} shown (newest first, last ${FEED_LIMIT} kept)`;
    el.feedEmpty.hidden = shown > 0;
  }

  function isChecked(channel) {
    const box = el.filters.querySelector(`input[value="${channel}"]`);
    return Boolean(box && box.checked);
  }

  function onFilterChange(ev) {
    const box = ev.target;
    if (!box || box.name !== "channel") return;
    const channel = box.value;
    send({ type: box.checked ? "subscribe" : "unsubscribe", id: nextId("s"), channels: [channel] });
    for (const tr of el.feedBody.children) {
      if (tr.dataset.channel === channel) tr.hidden = !box.checked;
    }
    renderFeedCount();
    // Coming back to `game` or `alerts`: what was missed meanwhile comes from a snapshot.
    if (box.checked && (channel === "game" || channel === "alerts")) requestState();
  }

  // ---- rendering: chart ----------------------------------------------------------------

  const SVG_NS = "http://www.w3.org/2000/svg";

  function svg(name, attrs, text) {
    const node = document.createElementNS(SVG_NS, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function niceCeiling(value) {
    if (value <= 0) return 100;   // an empty chart still has a 1.00 scale
    const pow = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * pow >= value) return step * pow;
    return 10 * pow;
  }

  function renderChart() {
    const chart = el.chart;
    const width = Math.max(300, Math.round(chart.clientWidth || 600));
    const height = Math.max(120, Math.round(chart.clientHeight || 200));
    chart.setAttribute("viewBox", `0 0 ${width} ${height}`);
    for (const node of [...chart.childNodes]) if (node.nodeName !== "desc") node.remove();

    const end = minuteStart(Date.now());
    const start = end - (CHART_MINUTES - 1) * 60000;
    for (const key of [...state.coinIn.keys()]) if (key < start - 60000) state.coinIn.delete(key);
    const values = [];
    let total = 0;
    for (let i = 0; i < CHART_MINUTES; i += 1) {
      const v = state.coinIn.get(start + i * 60000) || 0;
      values.push(v);
      total += v;
    }
    const top = niceCeiling(Math.max(...values));
    const left = 56, right = 8, topPad = 10, bottom = 22;
    const plotW = width - left - right;
    const plotH = height - topPad - bottom;
    const y = (v) => topPad + plotH - (v / top) * plotH;

    for (const frac of [0, 0.5, 1]) {
      const yy = y(top * frac);
      chart.appendChild(svg("line", { class: frac === 0 ? "axis" : "grid", x1: left, x2: width - right, y1: yy, y2: yy }));
      chart.appendChild(svg("text", { x: left - 6, y: yy + 4, "text-anchor": "end" }, formatMoney(Math.round(top * frac))));
    }
    const slot = plotW / CHART_MINUTES;
    values.forEach((v, i) => {
      if (v <= 0) return;
      const h = Math.max(1, (v / top) * plotH);
      const minute = new Date(start + i * 60000).toISOString().slice(11, 16);
      const bar = svg("rect", {
        class: "bar", x: left + i * slot + 1, y: topPad + plotH - h,
        width: Math.max(1, slot - 2), height: h, "data-minute": minute, "data-amount": v,
      });
      bar.appendChild(svg("title", {}, `${minute} UTC: ${formatMoney(v)}`));
      chart.appendChild(bar);
    });
    for (let i = 0; i < CHART_MINUTES; i += 15) {
      const label = new Date(start + i * 60000).toISOString().slice(11, 16);
      chart.appendChild(svg("text", { x: left + i * slot, y: height - 6 }, label));
    }
    chart.appendChild(svg("text", { x: width - right, y: height - 6, "text-anchor": "end" }, "now (UTC)"));
    el.chartTotal.textContent = `last hour ${formatMoney(total)}`;
    el.chartTotal.dataset.total = String(total);
  }

  // ---- login ---------------------------------------------------------------------------

  function showLogin(error) {
    stopTimers();
    el.login.hidden = false;
    el.dashboard.hidden = true;
    el.logout.hidden = true;
    el.role.hidden = true;
    el.loginError.textContent = error || "";
    el.tokenInput.value = "";
    el.tokenInput.focus();
  }

  function hideLogin() {
    el.login.hidden = true;
    el.dashboard.hidden = false;
    el.logout.hidden = false;
    el.loginError.textContent = "";
    renderChart();
  }

  function resetView() {
    state.terminals.clear();
    state.alerts.clear();
    state.feedIds.clear();
    state.coinIn.clear();
    state.actions.clear();
    state.lastActionOf.clear();
    el.terminalsBody.textContent = "";
    el.feedBody.textContent = "";
    delete el.filters.dataset.subscribed;
    renderAlerts();
    renderTerminalCount();
    renderFeedCount();
  }

  function signIn(token) {
    if (state.ws) {
      const old = state.ws;
      state.ws = null;
      old.close(1000, "signing in again");
    }
    state.token = token;
    state.attempt = 0;
    state.refusal = null;
    sessionStorage.setItem(TOKEN_KEY, token);
    resetView();
    el.loginError.textContent = "";
    connect();
  }

  function signOut() {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    cancelReconnect();
    const ws = state.ws;
    state.ws = null;
    state.authenticated = false;
    state.role = null;
    if (ws) ws.close(1000, "signed out");
    stopTimers();
    setConn("disconnected");
    resetView();
    showLogin("");
  }

  function status(text) {
    el.status.textContent = text;
  }

  // ---- start ---------------------------------------------------------------------------

  function init() {
    el.conn = $("conn-state");
    el.connDetail = $("conn-detail");
    el.role = $("session-role");
    el.logout = $("logout");
    el.login = $("login-panel");
    el.loginForm = $("login-form");
    el.tokenInput = $("token-input");
    el.loginError = $("login-error");
    el.dashboard = $("dashboard");
    el.terminalsBody = $("terminals-body");
    el.terminalsCount = $("terminals-count");
    el.terminalsEmpty = $("terminals-empty");
    el.alerts = $("alerts");
    el.alertsCount = $("alerts-count");
    el.alertsEmpty = $("alerts-empty");
    el.chart = $("coinin-chart");
    el.chartTotal = $("chart-total");
    el.filters = $("channel-filters");
    el.feedBody = $("feed-body");
    el.feedCount = $("feed-count");
    el.feedEmpty = $("feed-empty");
    el.status = $("status-line");

    el.loginForm.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const token = el.tokenInput.value.trim();
      if (!token) {
        el.loginError.textContent = "Enter a token.";
        return;
      }
      signIn(token);
    });
    el.logout.addEventListener("click", signOut);
    el.filters.addEventListener("change", onFilterChange);
    // Redraw the chart as minutes pass and when the screen size changes.
    setInterval(renderChart, 15000);
    window.addEventListener("resize", renderChart);

    const saved = sessionStorage.getItem(TOKEN_KEY);
    if (saved) {
      signIn(saved);
    } else {
      showLogin("");
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", init);
  } else {
    init();
  }
})();
