// slot-agent hub dashboard: a subscriber of /ws/client (docs/protocol.md §5) and a reader of
// the history API (§12).
//
// Plain browser JavaScript, no build step and no libraries, so the page works offline from the
// hub alone. Everything shown comes from the hub: the `snapshot` after `authOk` (and after every
// `getState`), then live `event`, `terminal`, `alertAck`, `actionAck` and `actionResult`
// messages, and pages of `/api/...` for older events and reports. Text from the wire is only
// ever written with textContent, never as HTML. Times are the casino's local time (the hub's
// `timezone`, sent in the snapshot).
"use strict";

(function () {
  const PROTOCOL = 1;
  const TOKEN_KEY = "slot-hub-token";
  const FEED_LIMIT = 500;             // rows kept in the feed (older pages raise it)
  const HISTORY_PAGE = 100;           // events per page when scrolling into history
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
  // Not on the alerts channel, but an attendant must go (api/wire.py ATTENDANT_EVENTS).
  const ATTENDANT_EVENTS = new Set(["handpayPending"]);
  // Events that make up one game: shown as one feed row (bet, win, new credits).
  const GAME_EVENTS = new Set(["gameStarted", "betPlaced", "gameEnded", "winPaid", "balanceChanged", "gameSelected"]);

  /** Human labels for event names (docs/events.md); unknown names are shown as they are. */
  const LABELS = {
    gameStarted: "Game started", betPlaced: "Bet", gameEnded: "Game ended", winPaid: "Win",
    gameSelected: "Game selected", balanceChanged: "Credits changed", progressiveHit: "Progressive hit",
    billAccepted: "Bill accepted", ticketPrinted: "Ticket printed", ticketInserted: "Ticket inserted",
    ticketRedeemed: "Ticket redeemed", handpayPending: "Handpay pending", handpayReset: "Handpay paid",
    cashout: "Cash-out", transferIn: "Transfer in", transferOut: "Transfer out",
    doorOpened: "Door opened", doorClosed: "Door closed", cashboxRemoved: "Cashbox removed",
    cashboxInstalled: "Cashbox installed", tilt: "Tilt", billAcceptorFault: "Bill acceptor fault",
    printerFault: "Printer fault", powerLost: "Power lost", powerRestored: "Power restored",
    memoryError: "Memory error", meterRollback: "Meter rollback", dataGap: "Data gap",
    bypassAttempt: "Bypass attempt", machineLinkDown: "Machine link down", machineLinkUp: "Machine link up",
    deviceOffline: "Terminal offline", deviceOnline: "Terminal online", outboxFault: "Outbox fault",
    unexplainedMeterChange: "Unexplained meter change", machineException: "Machine exception",
    agentStarted: "Agent started", agentStopping: "Agent stopping", machineIdentified: "Machine identified",
    meterSnapshot: "Meter snapshot", metersReset: "Meters reset", machineLocked: "Machine locked",
    machineUnlocked: "Machine unlocked", gameLocked: "Game locked", gameUnlocked: "Game unlocked",
    optionsChanged: "Options changed", operatorMenu: "Operator menu",
    actionCompleted: "Action completed", clockSkew: "Clock skew", cardInserted: "Card inserted",
    cardRemoved: "Card removed", playerSessionStarted: "Player session started",
    playerSessionEnded: "Player session ended",
  };

  // ---- state ---------------------------------------------------------------------------

  const state = {
    token: null,
    ws: null,
    conn: "disconnected",
    attempt: 0,                 // reconnect attempts since the last authOk
    reconnectTimer: null,
    countdownTimer: null,
    refusal: null,
    pendingAcks: new Map(),     // ack request id -> alert eventId (or "*" / "terminal:<id>")
    pingTimer: null,
    refreshTimer: null,
    lastFrameAt: 0,
    authenticated: false,
    role: null,
    name: null,
    requestSeq: 0,
    timezone: "UTC",            // the hub's (snapshot.timezone)
    gamingDay: "",
    lastCursor: 0,              // highest event cursor seen: a reconnect resumes after it
    terminals: new Map(),       // terminalId -> snapshot.terminals[] entry
    alerts: new Map(),          // eventId -> alert event frame (unacknowledged)
    feedIds: new Set(),         // ids of the events in the feed, for de-duplication
    openGame: new Map(),        // terminalId -> the feed row of its current game
    feedLimit: FEED_LIMIT,
    oldestCursor: null,         // the oldest cursor in the feed: older pages go before it
    loadingOlder: false,
    historyDone: false,
    coinIn: new Map(),          // minute start (ms since epoch) -> cents
    actions: new Map(),         // actionId -> {terminalId, action, status, error}
    lastActionOf: new Map(),    // terminalId -> actionId (the one whose status the row shows)
    sort: { key: "terminalId", dir: 1 },
    report: { next: null, kind: null },
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

  const formatters = new Map();
  function formatter(kind) {
    const key = `${kind}|${state.timezone}`;
    let f = formatters.get(key);
    if (!f) {
      const opts = { timeZone: state.timezone, hourCycle: "h23" };
      if (kind === "time") Object.assign(opts, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
      if (kind === "hm") Object.assign(opts, { hour: "2-digit", minute: "2-digit" });
      if (kind === "datetime") Object.assign(opts, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
      try {
        f = new Intl.DateTimeFormat("en-CA", opts);
      } catch (err) {
        opts.timeZone = "UTC";
        f = new Intl.DateTimeFormat("en-CA", opts);
      }
      formatters.set(key, f);
    }
    return f;
  }

  /** A wire timestamp in the casino's local time: "11:10:00". */
  function formatTime(ts) {
    const t = typeof ts === "string" ? Date.parse(ts) : ts;
    return Number.isFinite(t) ? formatter("time").format(t) : "";
  }

  function formatDateTime(ts) {
    const t = typeof ts === "string" ? Date.parse(ts) : ts;
    return Number.isFinite(t) ? formatter("datetime").format(t).replace(",", "") : "";
  }

  function formatHM(ms) {
    return formatter("hm").format(ms);
  }

  function label(name) {
    return LABELS[name] || String(name);
  }

  const FIELD_LABELS = {
    door: "door", kind: "kind", reasons: "why", gameNumber: "game", games: "games",
    playerId: "player", method: "paid by", count: "bills", validationNumber: "validation",
    level: "level", source: "source", reason: "reason", by: "by", error: "error",
    action: "action", status: "status", version: "version", serialNumber: "serial",
    employeeId: "employee", powerOff: "power off",
  };

  /** A short human summary of an event's data: known fields with words, nulls left out. */
  function describeData(name, data) {
    if (!data || typeof data !== "object") return "";
    const parts = [];
    for (const [key, value] of Object.entries(data)) {
      if (key === "amount" || key === "meters" || key === "credits" || key === "denomination") continue;
      if (value === null || value === undefined || value === false) continue;
      if (!(key in FIELD_LABELS)) continue;
      let text = Array.isArray(value) ? value.join(", ") : typeof value === "object" ? "" : String(value);
      if (value === true) text = "yes";
      if (!text) continue;
      if (text.length > 40) text = text.slice(0, 39) + "…";
      parts.push(`${FIELD_LABELS[key]} ${text}`);
    }
    return parts.join(" · ");
  }

  function minuteStart(ms) {
    return Math.floor(ms / 60000) * 60000;
  }

  function needsAck(frame) {
    return (frame.channel === "alerts" && !INFORMATIONAL_ALERTS.has(frame.event)) ||
      ATTENDANT_EVENTS.has(frame.event);
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
      case "replayed": return onReplayed(msg);
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
    // After authOk a client has no filter (§5): one filter per checked channel. After a
    // reconnect, each resumes after the last event this page saw (`from`, §5 resuming):
    // what happened meanwhile is replayed, then the live stream follows, with no gap.
    delete el.filters.dataset.subscribed;
    delete el.feed.dataset.resumedFrom;
    const from = state.lastCursor;
    for (const channel of CHANNELS) {
      if (!isChecked(channel)) continue;
      const message = { type: "subscribe", id: nextId("s"), channels: [channel] };
      if (from > 0) message.from = from;
      send(message);
    }
    if (from > 0) el.feed.dataset.resumedFrom = String(from);
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

  function onReplayed(msg) {
    const n = Number(el.feed.dataset.replayed || 0) + (Number(msg.count) || 0);
    el.feed.dataset.replayed = String(n);
    if (msg.count) status(`${n} events from while this page was away were brought back.`);
  }

  function onSnapshot(msg) {
    if (typeof msg.timezone === "string" && msg.timezone !== state.timezone) {
      state.timezone = msg.timezone;
      formatters.clear();
    }
    if (typeof msg.gamingDay === "string") state.gamingDay = msg.gamingDay;
    el.feedTimeHead.textContent = `Time (${state.timezone})`;
    renderClock();
    if (!el.reportDay.value && state.gamingDay) el.reportDay.value = state.gamingDay;
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
      // Newest first on the wire; add oldest first so games group as they happened.
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
    if (Number.isInteger(frame.cursor) && frame.cursor > state.lastCursor) state.lastCursor = frame.cursor;
    if (live && needsAck(frame)) {
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
    addToFeed(frame, state.openGame, insertRowByCursor);
    trimFeed();
    renderFeedCount();
  }

  function onTerminal(t) {
    if (!t || typeof t.terminalId !== "string") return;
    const before = state.terminals.get(t.terminalId);
    state.terminals.set(t.terminalId, t);
    renderTerminal(t);
    placeRow(t.terminalId);
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

  const TERMINAL_FIELDS = [
    ["terminalId", "Terminal"], ["online", "Connection"], ["link", "Link"], ["locked", "Lock"],
    ["condition", "Machine"], ["balance", "Credits"], ["gamesToday", "Games"],
    ["coinInToday", "Coin in"], ["coinOutToday", "Coin out"], ["netWinToday", "Net win"],
    ["holdPercentToday", "Hold"], ["unackedAlerts", "Alerts"], ["actions", "Actions"],
  ];
  const NUMERIC = new Set(["balance", "gamesToday", "coinInToday", "coinOutToday", "netWinToday", "holdPercentToday"]);

  function cell(row, field) {
    return row.querySelector(`[data-field="${field}"]`);
  }

  function terminalRow(id) {
    let row = el.terminalsBody.querySelector(`tr[data-terminal="${CSS.escape(id)}"]`);
    if (row) return row;
    row = document.createElement("tr");
    row.dataset.terminal = id;
    for (const [f, title] of TERMINAL_FIELDS) {
      const td = document.createElement(f === "terminalId" ? "th" : "td");
      td.dataset.label = title;   // the column's name, shown on phone-width cards
      if (f === "terminalId") {
        td.scope = "row";
        td.className = "terminal-id";
      }
      if (NUMERIC.has(f)) td.className = "num money";
      if (f === "online" || f === "link" || f === "locked" || f === "condition") td.className = "state";
      if (f === "actions") td.className = "actions";
      if (f === "unackedAlerts") td.className = "alerts-cell";
      td.dataset.field = f;
      row.appendChild(td);
    }
    const ack = document.createElement("button");
    ack.type = "button";
    ack.className = "ack-terminal";
    ack.dataset.ackTerminal = id;
    ack.addEventListener("click", () => confirmAckTerminal(id));
    cell(row, "unackedAlerts").appendChild(ack);
    const actions = cell(row, "actions");
    for (const [action, text, cls] of [["lock", "Lock", "danger"], ["unlock", "Unlock", ""]]) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = text;
      if (cls) b.className = cls;
      b.dataset.action = action;
      b.setAttribute("aria-label", `${text} ${id}`);
      b.addEventListener("click", () => confirmAction(id, action));
      actions.appendChild(b);
    }
    const st = document.createElement("span");
    st.className = "action-status";
    st.dataset.field = "actionStatus";
    st.setAttribute("aria-live", "polite");
    actions.appendChild(st);
    el.terminalsBody.appendChild(row);
    return row;
  }

  function setState(td, value, text) {
    td.dataset.value = value;
    td.textContent = text === undefined ? value : text;
  }

  function lockWord(t) {
    if (t.locked === true) {
      const reasons = Array.isArray(t.lockReasons) ? t.lockReasons : [];
      return reasons.length ? `locked (${reasons.join(", ")})` : "locked";
    }
    return t.locked === false ? "unlocked" : "unknown";
  }

  /** The machine's condition: what an attendant would go for, most urgent first. */
  function condition(t) {
    const parts = [];
    if (t.handpay) parts.push(`handpay ${formatMoney(t.handpay.amount)}`.trim());
    if (t.tilt) parts.push(`tilt${t.tilt.kind ? ` ${t.tilt.kind}` : ""}`);
    const doors = Array.isArray(t.doorsOpen) ? t.doorsOpen : [];
    if (doors.length) parts.push(`door open: ${doors.join(", ")}`);
    const value = t.handpay ? "handpay" : t.tilt ? "tilt" : doors.length ? "door" : "ok";
    return { value, text: parts.length ? parts.join(" · ") : "ok" };
  }

  function renderTerminal(t) {
    const row = terminalRow(t.terminalId);
    const idCell = cell(row, "terminalId");
    idCell.textContent = t.terminalId;
    const place = [t.bank ? `bank ${t.bank}` : "", t.area || ""].filter(Boolean).join(" · ");
    if (place) {
      const sub = document.createElement("span");
      sub.className = "place";
      sub.textContent = place;
      idCell.appendChild(sub);
    }
    const online = cell(row, "online");
    setState(online, t.online ? "online" : "offline");
    online.title = t.since ? `since ${formatDateTime(t.since)}` : "never seen";
    setState(cell(row, "link"), t.link === "up" || t.link === "down" ? t.link : "unknown");
    const locked = cell(row, "locked");
    setState(locked, t.locked === true ? "locked" : t.locked === false ? "unlocked" : "unknown", lockWord(t));
    const cond = condition(t);
    setState(cell(row, "condition"), cond.value, cond.text);
    cell(row, "balance").textContent = t.balance === null || t.balance === undefined ? "—" : formatMoney(t.balance);
    cell(row, "gamesToday").textContent = Number.isInteger(t.gamesToday) ? String(t.gamesToday) : "";
    cell(row, "coinInToday").textContent = formatMoney(t.coinInToday);
    cell(row, "coinOutToday").textContent = formatMoney(t.coinOutToday);
    const net = cell(row, "netWinToday");
    net.textContent = formatMoney(t.netWinToday);
    net.dataset.sign = t.netWinToday < 0 ? "negative" : "positive";
    cell(row, "holdPercentToday").textContent = typeof t.holdPercentToday === "number" ? `${t.holdPercentToday.toFixed(1)} %` : "—";
    const ack = row.querySelector("button[data-ack-terminal]");
    const n = Number(t.unackedAlerts) || 0;
    ack.textContent = n ? `Ack ${n}` : "none";
    ack.dataset.count = String(n);
    ack.setAttribute("aria-label", n ? `Acknowledge the ${n} alerts of ${t.terminalId}` : `No open alerts on ${t.terminalId}`);
    row.dataset.attention = cond.value !== "ok" || n > 0 || !t.online || t.locked === true ? "1" : "0";
    row.dataset.online = t.online ? "1" : "0";
    row.dataset.locked = t.locked === true ? "1" : "0";
    row.dataset.condition = cond.value;
    row.dataset.search = [t.terminalId, t.bank || "", t.area || ""].join(" ").toLowerCase();
    applyRowFilter(row);
    renderActionStatus(t.terminalId);
    updateControls();
  }

  function sortValue(t, key) {
    if (key === "condition") return condition(t).value === "ok" ? 0 : 1;
    if (key === "online") return t.online ? 1 : 0;
    if (key === "locked") return t.locked === true ? 1 : 0;
    const v = t[key];
    return v === null || v === undefined ? -Infinity : v;
  }

  function compareTerminals(a, b) {
    const key = state.sort.key;
    const va = sortValue(a, key), vb = sortValue(b, key);
    let c = 0;
    if (typeof va === "string" || typeof vb === "string") c = String(va).localeCompare(String(vb));
    else c = va < vb ? -1 : va > vb ? 1 : 0;
    return (c || a.terminalId.localeCompare(b.terminalId)) * (key === "terminalId" ? state.sort.dir : c ? state.sort.dir : 1);
  }

  /** Put one row where the sort order wants it (after a `terminal` update). */
  function placeRow(id) {
    const t = state.terminals.get(id);
    const row = terminalRow(id);
    const after = [...el.terminalsBody.children].find((r) => r !== row &&
      state.terminals.has(r.dataset.terminal) && compareTerminals(state.terminals.get(r.dataset.terminal), t) > 0);
    if (row.nextSibling !== (after || null)) el.terminalsBody.insertBefore(row, after || null);
  }

  function sortRows() {
    const list = [...state.terminals.values()].sort(compareTerminals);
    for (const t of list) el.terminalsBody.appendChild(terminalRow(t.terminalId));
    for (const th of el.terminalsHead.querySelectorAll("th[data-sort]")) {
      const on = th.dataset.sort === state.sort.key;
      if (on) th.setAttribute("aria-sort", state.sort.dir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    }
  }

  function applyRowFilter(row) {
    const q = el.search.value.trim().toLowerCase();
    const f = el.filter.value;
    let show = !q || (row.dataset.search || "").includes(q);
    if (f === "attention") show = show && row.dataset.attention === "1";
    if (f === "offline") show = show && row.dataset.online === "0";
    if (f === "locked") show = show && row.dataset.locked === "1";
    if (f === "handpay") show = show && row.dataset.condition === "handpay";
    if (f === "door") show = show && row.dataset.condition === "door";
    row.hidden = !show;
  }

  function applyFilters() {
    for (const row of el.terminalsBody.children) applyRowFilter(row);
    renderTerminalCount();
  }

  function renderTerminals() {
    for (const row of [...el.terminalsBody.children]) {
      if (!state.terminals.has(row.dataset.terminal)) row.remove();
    }
    for (const t of state.terminals.values()) renderTerminal(t);
    sortRows();
    renderTerminalCount();
    updateControls();
  }

  function renderTerminalCount() {
    const all = state.terminals.size;
    let online = 0;
    for (const t of state.terminals.values()) if (t.online) online += 1;
    let shown = 0;
    for (const row of el.terminalsBody.children) if (!row.hidden) shown += 1;
    el.terminalsCount.textContent = all ? `${online} of ${all} online${shown < all ? ` · ${shown} shown` : ""}` : "";
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

  // ---- confirmation ----------------------------------------------------------------------

  let confirmHandler = null;

  /** Ask before acting. ``needReason``: the operator must say why (it goes in the audit). */
  function confirm(title, text, okText, needReason, onOk) {
    el.confirmTitle.textContent = title;
    el.confirmText.textContent = text;
    el.confirmOk.textContent = okText;
    el.confirmReason.value = "";
    el.confirmReason.hidden = !needReason;
    el.confirmReasonLabel.hidden = !needReason;
    // Checked here, not with `required`: the page explains what is missing (#confirm-error).
    el.confirmReason.setAttribute("aria-required", needReason ? "true" : "false");
    el.confirmError.textContent = "";
    confirmHandler = { onOk, needReason };
    el.confirm.showModal();
    (needReason ? el.confirmReason : el.confirmOk).focus();
  }

  function onConfirmSubmit(ev) {
    ev.preventDefault();
    const handler = confirmHandler;
    if (!handler) return;
    const reason = el.confirmReason.value.trim();
    if (handler.needReason && !reason) {
      el.confirmError.textContent = "Give a reason: it is kept with the action in the audit trail.";
      el.confirmReason.focus();
      return;
    }
    confirmHandler = null;
    el.confirm.close();
    handler.onOk(reason);
  }

  function confirmAction(terminalId, action) {
    if (state.role !== "operator" || actionInFlight(terminalId)) return;
    const what = action === "lock" ? "Lock" : action === "unlock" ? "Unlock" : action;
    confirm(`${what} ${terminalId}?`,
      action === "lock" ? `The machine ${terminalId} stops taking play until it is unlocked.`
        : `${what} the machine ${terminalId}.`,
      `${what} ${terminalId}`, true, (reason) => sendAction(terminalId, action, reason));
  }

  function sendAction(terminalId, action, reason) {
    if (state.role !== "operator" || actionInFlight(terminalId)) return;
    const id = nextId("web");
    const message = {
      type: "action", id, terminalId, action, params: {}, reason,
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
    const why = canAct ? "" : state.role === "viewer" ? "Viewers cannot act or acknowledge" : "Not connected";
    for (const row of el.terminalsBody.children) {
      const busy = actionInFlight(row.dataset.terminal);
      for (const b of row.querySelectorAll("button[data-action]")) {
        b.disabled = !canAct || busy;
        b.title = why;
      }
      const ack = row.querySelector("button[data-ack-terminal]");
      if (ack) {
        ack.disabled = !canAct || ack.dataset.count === "0";
        ack.title = why;
      }
    }
    for (const b of el.alerts.querySelectorAll("button[data-ack]")) {
      b.disabled = !canAct || b.dataset.sent === "1";
      b.title = why;
    }
    el.ackAll.disabled = !canAct || state.alerts.size === 0;
    el.ackAll.title = why;
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
    li.dataset.severity = ATTENDANT_EVENTS.has(a.event) ? "attendant" : CRITICAL.has(a.event) ? "critical" : "warning";
    const title = document.createElement("span");
    title.className = "alert-title";
    const amount = a.data && Number.isInteger(a.data.amount) ? ` ${formatMoney(a.data.amount)}` : "";
    const kind = a.event === "handpayPending" && a.data && a.data.kind ? ` (${a.data.kind})` : "";
    title.textContent = `${a.terminalId} · ${label(a.event)}${kind}${amount}`;
    const meta = document.createElement("span");
    meta.className = "alert-meta";
    const details = describeData(a.event, a.data);
    const attendant = ATTENDANT_EVENTS.has(a.event) ? " · attendant needed" : "";
    meta.textContent = `${formatDateTime(a.timestamp)}${attendant}${details ? ` · ${details}` : ""}`;
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

  function confirmAckAll() {
    if (state.role !== "operator") return;
    const n = state.alerts.size;
    confirm("Acknowledge every open alert?",
      `${n} open alert${n === 1 ? "" : "s"} on the floor will be recorded as acknowledged by ${state.name}.`,
      "Acknowledge all", false, () => send({ type: "ack", id: nextId("ackall"), all: true }));
  }

  function confirmAckTerminal(terminalId) {
    if (state.role !== "operator") return;
    const t = state.terminals.get(terminalId);
    const n = t ? t.unackedAlerts : 0;
    confirm(`Acknowledge the alerts of ${terminalId}?`,
      `${n} open alert${n === 1 ? "" : "s"} of ${terminalId} will be recorded as acknowledged by ${state.name}.`,
      `Acknowledge ${terminalId}`, false,
      () => send({ type: "ack", id: nextId("ackterm"), terminalId }));
  }

  // ---- rendering: feed -----------------------------------------------------------------

  /** One row of the feed: a game (its events together) or one other event. */
  function newFeedRow(frame, isGame) {
    const tr = document.createElement("tr");
    tr.className = isGame ? "game" : "single";
    tr.dataset.eventId = frame.id;
    tr.dataset.events = frame.id;
    tr.dataset.channel = frame.channel;
    tr.dataset.terminal = frame.terminalId;
    tr.dataset.event = isGame ? "game" : frame.event;
    tr.dataset.cursor = String(Number.isInteger(frame.cursor) ? frame.cursor : 0);
    tr.hidden = !isChecked(frame.channel);
    const cells = {};
    for (const name of ["time", "channel", "terminal", "what", "amount", "win", "credits", "more"]) {
      const td = document.createElement("td");
      td.dataset.field = name;
      cells[name] = td;
      tr.appendChild(td);
    }
    cells.time.className = "time";
    cells.time.textContent = formatTime(frame.timestamp);
    cells.time.title = formatDateTime(frame.timestamp);
    const chip = document.createElement("span");
    chip.className = "chan";
    chip.dataset.channel = frame.channel;
    chip.textContent = frame.channel;
    cells.channel.appendChild(chip);
    cells.terminal.className = "terminal-id";
    cells.terminal.textContent = frame.terminalId;
    for (const n of ["amount", "win", "credits"]) cells[n].className = "num money";
    const toggle = document.createElement("button");
    toggle.type = "button";
    toggle.className = "details-toggle";
    toggle.textContent = "Details";
    toggle.setAttribute("aria-expanded", "false");
    toggle.addEventListener("click", () => toggleDetails(tr, toggle));
    cells.more.appendChild(toggle);
    tr._frames = [];
    tr._cells = cells;
    return tr;
  }

  function renderGameRow(tr) {
    const c = tr._cells;
    let bet = null, win = 0, hasWin = false, credits = null, game = null, ended = false;
    for (const f of tr._frames) {
      const d = f.data || {};
      if (f.event === "betPlaced" && Number.isInteger(d.amount)) bet = (bet || 0) + d.amount;
      if (f.event === "winPaid" && Number.isInteger(d.amount)) { win += d.amount; hasWin = true; }
      if (f.event === "balanceChanged" && Number.isInteger(d.amount)) credits = d.amount;
      if (d.gameNumber !== undefined && d.gameNumber !== null) game = d.gameNumber;
      if (f.event === "gameEnded") ended = true;
    }
    c.what.textContent = `Game${game !== null ? ` ${game}` : ""}${ended || hasWin ? "" : " (in play)"}`;
    c.amount.textContent = bet === null ? "" : formatMoney(bet);
    c.win.textContent = hasWin ? formatMoney(win) : ended ? "0.00" : "";
    c.credits.textContent = credits === null ? "" : formatMoney(credits);
  }

  function renderSingleRow(tr) {
    const f = tr._frames[0];
    const d = f.data || {};
    const details = describeData(f.event, d);
    tr._cells.what.textContent = `${label(f.event)}${details ? ` — ${details}` : ""}`;
    tr._cells.amount.textContent = Number.isInteger(d.amount) ? formatMoney(d.amount) : "";
    tr._cells.amount.dataset.field = "amount";
  }

  function attach(tr, frame) {
    tr._frames.push(frame);
    tr.dataset.events = tr._frames.map((f) => f.id).join(" ");
    const cursor = Number.isInteger(frame.cursor) ? frame.cursor : 0;
    if (cursor > Number(tr.dataset.cursor)) tr.dataset.cursor = String(cursor);
    state.feedIds.add(frame.id);
    if (tr.className === "game") renderGameRow(tr); else renderSingleRow(tr);
    if (tr._detailsRow) fillDetails(tr);
  }

  /** Put ``frame`` in the feed: into its terminal's current game row when it belongs to
   * that game, else as a new row placed by ``insert``. ``games`` tracks open game rows. */
  function addToFeed(frame, games, insert) {
    if (GAME_EVENTS.has(frame.event)) {
      const open = games.get(frame.terminalId);
      const starts = frame.event === "gameStarted" ||
        (frame.event === "betPlaced" && open && open._frames.some((f) => f.event === "betPlaced"));
      if (open && !starts) {
        attach(open, frame);
        return open;
      }
      const tr = newFeedRow(frame, true);
      games.set(frame.terminalId, tr);
      attach(tr, frame);
      insert(tr);
      return tr;
    }
    const tr = newFeedRow(frame, false);
    attach(tr, frame);
    insert(tr);
    return tr;
  }

  /** Newest (highest cursor) first: a replayed event lands below the newer rows. */
  function insertRowByCursor(tr) {
    const cursor = Number(tr.dataset.cursor);
    let before = el.feedBody.firstElementChild;
    while (before && (before.classList.contains("details") || Number(before.dataset.cursor) > cursor)) {
      before = before.nextElementSibling;
    }
    el.feedBody.insertBefore(tr, before);
    noteOldest(tr);
  }

  function noteOldest(tr) {
    const cursor = Number(tr._frames[0] && tr._frames[0].cursor);
    if (Number.isInteger(cursor) && cursor > 0 && (state.oldestCursor === null || cursor < state.oldestCursor)) {
      state.oldestCursor = cursor;
    }
  }

  function trimFeed() {
    while (el.feedBody.querySelectorAll("tr:not(.details)").length > state.feedLimit) {
      let old = el.feedBody.lastElementChild;
      if (old.classList.contains("details")) {
        old.remove();
        old = el.feedBody.lastElementChild;
      }
      for (const f of old._frames || []) state.feedIds.delete(f.id);
      for (const [tid, tr] of state.openGame) if (tr === old) state.openGame.delete(tid);
      old.remove();
      state.historyDone = false;
      const last = el.feedBody.lastElementChild;
      state.oldestCursor = last && last._frames ? Math.min(...last._frames.map((f) => f.cursor || Infinity)) : null;
    }
  }

  function toggleDetails(tr, button) {
    const open = button.getAttribute("aria-expanded") === "true";
    button.setAttribute("aria-expanded", open ? "false" : "true");
    button.textContent = open ? "Details" : "Hide";
    if (open) {
      if (tr._detailsRow) tr._detailsRow.remove();
      tr._detailsRow = null;
      return;
    }
    const row = document.createElement("tr");
    row.className = "details";
    row.hidden = tr.hidden;
    const td = document.createElement("td");
    td.colSpan = 8;
    row.appendChild(td);
    tr._detailsRow = row;
    tr.after(row);
    fillDetails(tr);
  }

  function fillDetails(tr) {
    const td = tr._detailsRow.firstChild;
    td.textContent = "";
    const dl = document.createElement("dl");
    for (const f of tr._frames) {
      const dt = document.createElement("dt");
      dt.textContent = `${formatTime(f.timestamp)} ${label(f.event)}`;
      const dd = document.createElement("dd");
      const d = f.data || {};
      const parts = [];
      for (const [k, v] of Object.entries(d)) {
        if (v === null || v === undefined) continue;
        if (k === "amount") { parts.push(`amount ${formatMoney(v)}`); continue; }
        parts.push(`${k} ${typeof v === "object" ? JSON.stringify(v) : String(v)}`);
      }
      dd.textContent = `${parts.join(" · ")}${parts.length ? " · " : ""}id ${f.id}`;
      dl.append(dt, dd);
    }
    td.appendChild(dl);
  }

  function renderFeedCount() {
    let shown = 0;
    for (const tr of el.feedBody.children) if (!tr.hidden && !tr.classList.contains("details")) shown += 1;
    el.feedCount.textContent = `${shown} rows, newest first`;
    el.feedEmpty.hidden = shown > 0;
    el.feedMore.textContent = state.historyDone ? "The start of the stored history." :
      state.loadingOlder ? "Loading older events…" : "Scroll down for older events.";
  }

  function isChecked(channel) {
    const box = el.filters.querySelector(`input[value="${channel}"]`);
    return Boolean(box && box.checked);
  }

  function checkedChannels() {
    return CHANNELS.filter(isChecked);
  }

  function onFilterChange(ev) {
    const box = ev.target;
    if (!box || box.name !== "channel") return;
    const channel = box.value;
    send({ type: box.checked ? "subscribe" : "unsubscribe", id: nextId("s"), channels: [channel] });
    for (const tr of el.feedBody.children) {
      if (tr.dataset.channel === channel) tr.hidden = !box.checked;
      if (tr.classList.contains("details")) tr.hidden = tr.previousElementSibling ? tr.previousElementSibling.hidden : true;
    }
    renderFeedCount();
    // Coming back to `game` or `alerts`: what was missed meanwhile comes from a snapshot.
    if (box.checked && (channel === "game" || channel === "alerts")) requestState();
  }

  // ---- history (infinite scroll) -------------------------------------------------------

  async function api(path) {
    const resp = await fetch(path, { headers: { Authorization: `Bearer ${state.token}` } });
    if (!resp.ok) {
      let message = `${resp.status}`;
      try { message = (await resp.json()).message || message; } catch (err) { /* not JSON */ }
      throw new Error(message);
    }
    return resp;
  }

  /** The next page of older events (before the oldest row), appended below. */
  async function loadOlder() {
    if (state.loadingOlder || state.historyDone || !state.authenticated) return;
    const channels = checkedChannels();
    if (!channels.length) return;
    state.loadingOlder = true;
    renderFeedCount();
    try {
      const before = state.oldestCursor === null ? state.lastCursor + 1 : state.oldestCursor;
      if (before <= 1) {
        state.historyDone = true;
        return;
      }
      const resp = await api(`/api/history/events?before=${before}&limit=${HISTORY_PAGE}&channel=${channels.join(",")}`);
      const body = await resp.json();
      const frames = (body.events || []).filter((f) => !state.feedIds.has(f.id));
      // Newest first: group oldest first, then append the rows newest first at the bottom.
      let rows = [];
      const games = new Map();
      for (const f of [...frames].reverse()) addToFeed(f, games, (tr) => rows.push(tr));
      // A game cut by the page boundary: its older part joins the row already shown.
      rows = rows.filter((tr) => !joinedOlderPart(tr, games));
      for (const tr of rows.reverse()) {
        el.feedBody.appendChild(tr);
        noteOldest(tr);
      }
      state.feedLimit += rows.length;
      if (body.next === null) state.historyDone = true;
      el.feed.dataset.historyPages = String(Number(el.feed.dataset.historyPages || 0) + 1);
    } catch (err) {
      status(`Older events could not be loaded: ${err.message}`);
    } finally {
      state.loadingOlder = false;
      renderFeedCount();
    }
  }

  /** True when ``tr`` (the newest older row of its terminal's game) belongs to the oldest
   * game row already in the feed for that terminal: its events are put in that row. */
  function joinedOlderPart(tr, games) {
    if (tr.className !== "game" || games.get(tr.dataset.terminal) !== tr) return false;
    let bottom = null;
    for (const row of el.feedBody.children) {
      if (row.dataset.terminal === tr.dataset.terminal && !row.classList.contains("details")) bottom = row;
    }
    if (!bottom || bottom.className !== "game") return false;
    const names = (r) => new Set(r._frames.map((f) => f.event));
    const newer = names(bottom), older = names(tr);
    if (newer.has("gameStarted") || (newer.has("betPlaced") && older.has("betPlaced"))) return false;
    bottom._frames = [...tr._frames, ...bottom._frames];
    bottom.dataset.events = bottom._frames.map((f) => f.id).join(" ");
    bottom.dataset.eventId = bottom._frames[0].id;
    renderGameRow(bottom);
    if (bottom._detailsRow) fillDetails(bottom);
    noteOldest(bottom);
    return true;
  }

  function onFeedScroll() {
    const w = el.feedWrap;
    if (w.scrollTop + w.clientHeight >= w.scrollHeight - 80) loadOlder();
  }

  // ---- reports -------------------------------------------------------------------------

  function reportPath(format, after) {
    const kind = el.reportKind.value;
    const params = new URLSearchParams();
    const terminal = el.reportTerminal.value.trim();
    const event = el.reportEvent.value.trim();
    if (terminal) params.set("terminal", terminal);
    if (kind === "summary") {
      if (el.reportDay.value) params.set("day", el.reportDay.value);
      if (format === "csv") params.set("format", "csv");
      return `/api/summary?${params}`;
    }
    if (kind === "events" && event) params.set("event", event);
    params.set("limit", "200");
    if (after) params.set("after", String(after));
    if (format === "csv") params.set("format", "csv");
    return `/api/${kind === "events" ? "history/events" : "audit"}?${params}`;
  }

  function reportTable(head, rows) {
    el.reportHead.textContent = "";
    const tr = document.createElement("tr");
    for (const h of head) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = h;
      tr.appendChild(th);
    }
    el.reportHead.appendChild(tr);
    for (const r of rows) {
      const row = document.createElement("tr");
      r.forEach((v, i) => {
        const td = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) td.scope = "row";
        td.dataset.label = head[i];
        td.textContent = v === null || v === undefined ? "" : String(v);
        row.appendChild(td);
      });
      el.reportBody.appendChild(row);
    }
  }

  async function runReport(ev, after) {
    if (ev) ev.preventDefault();
    if (!after) el.reportBody.textContent = "";
    el.reportStatus.textContent = "loading…";
    try {
      const body = await (await api(reportPath("json", after))).json();
      const kind = el.reportKind.value;
      let head, rows;
      if (kind === "summary") {
        head = ["Terminal", "Bank", "Area", "Coin in", "Coin out", "Net win", "Hold", "Games", "Bills", "Tickets in", "Tickets out", "Handpays"];
        const all = [...body.terminals, { terminalId: "Total", ...body.totals }];
        rows = all.map((r) => [r.terminalId, r.bank || "", r.area || "", formatMoney(r.coinIn), formatMoney(r.coinOut),
          formatMoney(r.netWin), r.holdPercent === null ? "—" : `${r.holdPercent.toFixed(2)} %`, r.games,
          `${r.bills.count} · ${formatMoney(r.bills.amount)}`, `${r.ticketsIn.count} · ${formatMoney(r.ticketsIn.amount)}`,
          `${r.ticketsOut.count} · ${formatMoney(r.ticketsOut.amount)}`, `${r.handpays.count} · ${formatMoney(r.handpays.amount)}`]);
        el.reportStatus.textContent = `gaming day ${body.day} (${body.timezone}, from ${formatDateTime(body.from)})`;
        state.report.next = null;
      } else if (kind === "events") {
        head = ["Cursor", "Time", "Terminal", "Event", "Amount", "Details"];
        rows = body.events.map((f) => [f.cursor, formatDateTime(f.timestamp), f.terminalId, label(f.event),
          f.data && Number.isInteger(f.data.amount) ? formatMoney(f.data.amount) : "", describeData(f.event, f.data)]);
        state.report.next = body.next;
        el.reportStatus.textContent = `${el.reportBody.children.length + rows.length} events`;
      } else {
        head = ["#", "When", "Who", "What", "Terminal", "Subject", "Reason", "Result"];
        rows = body.entries.map((e) => [e.cursor, formatDateTime(e.at), `${e.who} (${e.role})`,
          e.kind === "action" ? `action ${e.what}` : e.kind === "alertAck" ? `acknowledged ${label(e.what)}` : e.kind,
          e.terminalId || "", e.subject || "", e.reason || "", e.result]);
        state.report.next = body.next;
        el.reportStatus.textContent = `${el.reportBody.children.length + rows.length} entries`;
      }
      reportTable(head, rows);
      el.reportNext.hidden = !state.report.next;
      el.reportTable.dataset.kind = kind;
      el.reportTable.dataset.rows = String(el.reportBody.children.length);
    } catch (err) {
      el.reportStatus.textContent = `failed: ${err.message}`;
    }
  }

  async function downloadCsv() {
    try {
      const blob = await (await api(reportPath("csv", null))).blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = `${el.reportKind.value}-${el.reportDay.value || "now"}.csv`;
      document.body.appendChild(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (err) {
      el.reportStatus.textContent = `CSV failed: ${err.message}`;
    }
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
      const minute = formatHM(start + i * 60000);
      const bar = svg("rect", {
        class: "bar", x: left + i * slot + 1, y: topPad + plotH - h,
        width: Math.max(1, slot - 2), height: h, "data-minute": minute, "data-amount": v,
      });
      bar.appendChild(svg("title", {}, `${minute}: ${formatMoney(v)}`));
      chart.appendChild(bar);
    });
    // Labels never overlap: fewer of them on a narrow chart (about 70 px each).
    const every = plotW < 420 ? 30 : 15;
    for (let i = 0; i < CHART_MINUTES; i += every) {
      chart.appendChild(svg("text", { x: left + i * slot, y: height - 6 }, formatHM(start + i * 60000)));
    }
    chart.appendChild(svg("text", { x: width - right, y: height - 6, "text-anchor": "end" }, "now"));
    el.chartTotal.textContent = `last hour ${formatMoney(total)}`;
    el.chartTotal.dataset.total = String(total);
  }

  function renderClock() {
    if (!el.clock) return;
    el.clock.textContent = `${formatDateTime(Date.now())} ${state.timezone}${state.gamingDay ? ` · gaming day ${state.gamingDay}` : ""}`;
    el.clock.dataset.timezone = state.timezone;
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
    state.openGame.clear();
    state.coinIn.clear();
    state.actions.clear();
    state.lastActionOf.clear();
    state.lastCursor = 0;
    state.oldestCursor = null;
    state.historyDone = false;
    state.feedLimit = FEED_LIMIT;
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
    el.clock = $("casino-clock");
    el.role = $("session-role");
    el.logout = $("logout");
    el.login = $("login-panel");
    el.loginForm = $("login-form");
    el.tokenInput = $("token-input");
    el.loginError = $("login-error");
    el.dashboard = $("dashboard");
    el.terminalsHead = $("terminals").tHead;
    el.terminalsBody = $("terminals-body");
    el.terminalsCount = $("terminals-count");
    el.terminalsEmpty = $("terminals-empty");
    el.search = $("terminal-search");
    el.filter = $("terminal-filter");
    el.alerts = $("alerts");
    el.alertsCount = $("alerts-count");
    el.alertsEmpty = $("alerts-empty");
    el.ackAll = $("ack-all");
    el.chart = $("coinin-chart");
    el.chartTotal = $("chart-total");
    el.filters = $("channel-filters");
    el.feed = $("feed");
    el.feedWrap = $("feed-wrap");
    el.feedTimeHead = $("feed-time-head");
    el.feedBody = $("feed-body");
    el.feedCount = $("feed-count");
    el.feedEmpty = $("feed-empty");
    el.feedMore = $("feed-more");
    el.reportForm = $("report-form");
    el.reportKind = $("report-kind");
    el.reportDay = $("report-day");
    el.reportTerminal = $("report-terminal");
    el.reportEvent = $("report-event");
    el.reportCsv = $("report-csv");
    el.reportTable = $("report-table");
    el.reportHead = $("report-head");
    el.reportBody = $("report-body");
    el.reportNext = $("report-next");
    el.reportStatus = $("report-status");
    el.confirm = $("confirm-dialog");
    el.confirmForm = $("confirm-form");
    el.confirmTitle = $("confirm-title");
    el.confirmText = $("confirm-text");
    el.confirmReason = $("confirm-reason");
    el.confirmReasonLabel = $("confirm-reason-label");
    el.confirmError = $("confirm-error");
    el.confirmOk = $("confirm-ok");
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
    el.search.addEventListener("input", applyFilters);
    el.filter.addEventListener("change", applyFilters);
    for (const th of el.terminalsHead.querySelectorAll("th[data-sort]")) {
      th.querySelector("button").addEventListener("click", () => {
        const key = th.dataset.sort;
        state.sort = { key, dir: state.sort.key === key ? -state.sort.dir : 1 };
        sortRows();
      });
    }
    el.ackAll.addEventListener("click", confirmAckAll);
    el.confirmForm.addEventListener("submit", onConfirmSubmit);
    $("confirm-cancel").addEventListener("click", () => {
      confirmHandler = null;
      el.confirm.close();
    });
    el.feedWrap.addEventListener("scroll", onFeedScroll, { passive: true });
    el.reportForm.addEventListener("submit", (ev) => runReport(ev, null));
    el.reportCsv.addEventListener("click", downloadCsv);
    el.reportNext.addEventListener("click", () => runReport(null, state.report.next));
    // Redraw the chart as minutes pass and when the screen size changes.
    setInterval(() => { renderChart(); renderClock(); }, 15000);
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
