// What every page shares: calls to the API, the wallet (EIP-1193 window.ethereum), sign-in with
// Ethereum (EIP-4361) where the API offers it, signed actions, and small DOM helpers.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && (body.title || body.detail)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
  get fix() {
    return this.body.detail || "";
  }
}

const SESSION_KEY = "electra.siwe"; // the API's session token from sign-in (EIP-4361)
const SESSION_ACCOUNT_KEY = "electra.siwe.account"; // whose token it is

export function sessionToken() {
  return sessionStorage.getItem(SESSION_KEY);
}

function forgetSession() {
  sessionStorage.removeItem(SESSION_KEY);
  sessionStorage.removeItem(SESSION_ACCOUNT_KEY);
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const token = sessionToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { title: text };
    }
  }
  if (res.status === 401 && token) {
    // The token expired or was ended (the API refuses a dead token even on public routes): drop
    // it, ask once more without it, and let the pages offer to sign in again.
    forgetSession();
    if (wallet.signedIn) {
      wallet.signedIn = false;
      wallet.notify();
    }
    return api(path, { method, body });
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

let configPromise = null;
export function config() {
  if (!configPromise) configPromise = api("/api/v1/web/config");
  return configPromise;
}

// ------------------------------------------------------------------ DOM helpers

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function $(selector) {
  return document.querySelector(selector);
}

export function say(target, text, kind = "info") {
  const box = typeof target === "string" ? $(target) : target;
  if (!box) return;
  box.className = `message ${kind}`;
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  box.textContent = text;
}

export function sayError(target, err) {
  const fix = err instanceof ApiError && err.fix ? ` ${err.fix}.` : "";
  say(target, `${err.message}.${fix}`.replace(/\.\./g, "."), "error");
}

// ?per_page= on a page's URL: how many rows a paged list shows (1-200, default 50).
export function pageSize() {
  return Math.min(200, Math.max(1, parseInt(new URLSearchParams(location.search).get("per_page"), 10) || 50));
}

// Buttons to move through a paged list ({offset, limit, total} from the API); go(offset) loads a
// page. Nothing when everything fits on one.
export function pager({ offset, limit, total }, go, { id, label, back, forward }) {
  if (total <= limit) return el("span", {});
  const prev = el("button", { type: "button", class: "secondary", id: `${id}-prev`, onclick: () => go(Math.max(0, offset - limit)) }, back);
  const next = el("button", { type: "button", class: "secondary", id: `${id}-next`, onclick: () => go(offset + limit) }, forward);
  prev.disabled = offset === 0;
  next.disabled = offset + limit >= total;
  return el("nav", { class: "pager", "aria-label": label }, prev, " ", next);
}

export function badge(word, cls) {
  return el("span", { class: `status ${cls || word}` }, word);
}

export function formatUnits(units, decimals) {
  // Base units (decimal string) as a decimal number of the asset, without floats.
  const neg = String(units).startsWith("-");
  const digits = String(units).replace("-", "").padStart(decimals + 1, "0");
  const whole = digits.slice(0, digits.length - decimals) || "0";
  const frac = decimals ? digits.slice(digits.length - decimals).replace(/0+$/, "") : "";
  return `${neg ? "-" : ""}${BigInt(whole).toString()}${frac ? "." + frac : ""}`;
}

export function unitsToNumber(units, decimals) {
  // Only for drawing charts: money is shown with formatUnits.
  return Number(formatUnits(units, decimals));
}

export function shortAddress(a) {
  return a ? `${a.slice(0, 6)}…${a.slice(-4)}` : "";
}

export function when(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(Number(ms)).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function kw(watts) {
  return `${(Number(watts) / 1000).toLocaleString("en", { maximumFractionDigits: 1 })} kW`;
}

export function kwh(wh) {
  return `${(Number(wh) / 1000).toLocaleString("en", { minimumFractionDigits: 2, maximumFractionDigits: 2 })} kWh`;
}

export function txBlock(tx) {
  const shown = { from: tx.from, to: tx.to, value: tx.value, data: tx.data };
  return el(
    "div",
    { class: "tx-details" },
    el("p", {}, el("strong", {}, "Your wallet sends: "), tx.function, " — ", tx.summary),
    el("pre", { class: "tx", "aria-label": "Transaction the wallet sends" }, JSON.stringify(shown, null, 2)),
    el("p", { class: "hint" }, "Same from the command line: ", el("code", {}, tx.cli)),
  );
}

// ------------------------------------------------------------------ the wallet

function utf8Hex(text) {
  return "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}

const listeners = new Set();

export const wallet = {
  account: null, // checksummed, from the API
  chainId: null,
  signedIn: false,

  available() {
    return typeof window.ethereum !== "undefined" && window.ethereum !== null;
  },

  onChange(fn) {
    listeners.add(fn);
  },

  notify() {
    for (const fn of listeners) fn(this);
  },

  async use(accounts) {
    if (!accounts || accounts.length === 0) {
      this.account = null;
      this.signedIn = false;
      forgetSession();
      sessionStorage.removeItem("electra.account");
      this.notify();
      return null;
    }
    const info = await api(`/api/v1/web/accounts/${accounts[0]}`);
    this.account = info.address;
    // A token is the account's that signed in for it: another account must sign in itself.
    this.signedIn = Boolean(sessionToken()) && sessionStorage.getItem(SESSION_ACCOUNT_KEY) === this.account;
    if (!this.signedIn) forgetSession();
    this.chainId = parseInt(await window.ethereum.request({ method: "eth_chainId" }), 16);
    sessionStorage.setItem("electra.account", this.account);
    this.notify();
    return this.account;
  },

  async connect() {
    if (!this.available()) throw new Error("No wallet found: install an EIP-1193 wallet (such as a browser extension)");
    return this.use(await window.ethereum.request({ method: "eth_requestAccounts" }));
  },

  async restore() {
    if (!this.available() || !sessionStorage.getItem("electra.account")) return null;
    return this.use(await window.ethereum.request({ method: "eth_accounts" }));
  },

  async personalSign(text) {
    return window.ethereum.request({ method: "personal_sign", params: [utf8Hex(text), this.account] });
  },

  async signTypedData(typed) {
    return window.ethereum.request({ method: "eth_signTypedData_v4", params: [this.account, JSON.stringify(typed)] });
  },

  async send(tx) {
    const cfg = await config();
    if (this.chainId !== cfg.chain_id) {
      throw new Error(`Your wallet is on chain ${this.chainId}, the platform on ${cfg.chain_id}: switch networks`);
    }
    const hash = await window.ethereum.request({
      method: "eth_sendTransaction",
      params: [{ from: this.account, to: tx.to, data: tx.data, value: tx.value || "0x0" }],
    });
    return this.receipt(hash);
  },

  async receipt(hash, timeoutMs = 60000) {
    const until = Date.now() + timeoutMs;
    while (Date.now() < until) {
      const r = await window.ethereum.request({ method: "eth_getTransactionReceipt", params: [hash] });
      if (r) {
        if (r.status !== "0x1") throw new Error(`Transaction ${hash} reverted`);
        return r;
      }
      await new Promise((ok) => setTimeout(ok, 500));
    }
    throw new Error(`Transaction ${hash} was not mined within ${timeoutMs / 1000} s`);
  },

  // EIP-4361 sign-in, where the API offers /api/v1/auth/nonce and /api/v1/auth/siwe.
  async signIn() {
    const cfg = await config();
    if (!cfg.features.siwe) return false;
    const statement = "Sign in to Electra to charge, host and vote.";
    // The server hands out a single-use nonce and, given the address, the exact message to sign.
    const n = await api("/api/v1/auth/nonce", { method: "POST", body: { address: this.account, statement } });
    const message =
      n.message ||
      siweMessage({
        domain: n.domain || location.host,
        address: this.account,
        statement,
        uri: n.uri || location.origin,
        chainId: n.chain_id || cfg.chain_id,
        nonce: n.nonce,
        issuedAt: n.issued_at || new Date().toISOString(),
      });
    const signature = await this.personalSign(message);
    const answer = await api("/api/v1/auth/siwe", { method: "POST", body: { message, signature } });
    const token = answer && (answer.token || answer.access_token);
    if (!token) throw new Error("The API answered the sign-in without a session token");
    sessionStorage.setItem(SESSION_KEY, token);
    sessionStorage.setItem(SESSION_ACCOUNT_KEY, this.account);
    this.signedIn = true;
    this.notify();
    return true;
  },
};

export function siweMessage({ domain, address, statement, uri, chainId, nonce, issuedAt }) {
  return [
    `${domain} wants you to sign in with your Ethereum account:`,
    address,
    "",
    statement,
    "",
    `URI: ${uri}`,
    "Version: 1",
    `Chain ID: ${chainId}`,
    `Nonce: ${nonce}`,
    `Issued At: ${issuedAt}`,
  ].join("\n");
}

// A change off-chain: the server words it, the wallet signs the words, the server checks and does it.
export async function signedAction(kind, params, statusBox) {
  const action = await api("/api/v1/web/actions", { method: "POST", body: { kind, account: wallet.account, params } });
  if (statusBox) say(statusBox, `Confirm in your wallet: ${action.statement}`, "info");
  const signature = await wallet.personalSign(action.message);
  return api(`/api/v1/web/actions/${action.nonce}`, { method: "POST", body: { signature } });
}

// The header's wallet button, on every page.
export function mountWallet() {
  const box = $("#wallet-widget");
  const render = () => {
    box.replaceChildren();
    if (!wallet.available()) {
      box.append(el("span", {}, "No wallet found: browsing signed out"));
      return;
    }
    if (!wallet.account) {
      box.append(
        el("button", { type: "button", id: "connect-wallet", onclick: () => connectAndSignIn(box) }, "Connect wallet"),
      );
      return;
    }
    box.append(
      el("span", { class: "who", title: wallet.account }, shortAddress(wallet.account)),
      el("span", { class: "visually-hidden" }, ` (${wallet.account})`),
      el("span", { id: "signin-state" }, wallet.signedIn ? "signed in" : "connected"),
    );
    if (!wallet.signedIn) {
      box.append(el("button", { type: "button", id: "sign-in", onclick: () => connectAndSignIn(box) }, "Sign in"));
    }
  };
  wallet.onChange(render);
  render();
  if (wallet.available() && window.ethereum.on) {
    window.ethereum.on("accountsChanged", (accounts) => wallet.use(accounts));
  }
  wallet.restore().catch((err) => console.warn("wallet restore:", err.message));
}

async function connectAndSignIn(box) {
  const note = $("#wallet-message");
  try {
    await wallet.connect();
    const cfg = await config();
    if (cfg.features.siwe) {
      await wallet.signIn();
      say(note, "Signed in with your wallet.", "ok");
    } else {
      say(
        note,
        "Wallet connected. Sign-in with Ethereum is not offered by this API yet: each change asks your wallet to sign it.",
        "info",
      );
    }
  } catch (err) {
    sayError(note, err);
  }
  box.querySelector("button")?.focus();
}

// Live updates: server-sent events where the API has them, else polling.
export async function follow(refresh, everyMs = 1500) {
  const cfg = await config();
  let timer = null;
  let source = null;
  const stop = () => {
    if (timer) clearInterval(timer);
    if (source) source.close();
  };
  if (cfg.features.events && typeof EventSource !== "undefined") {
    // EventSource cannot send headers: a signed-in page passes its session token in the query,
    // so the stream carries its own sessions' progress, not only charger status.
    const token = sessionToken();
    source = new EventSource(token ? `/api/v1/events?access_token=${encodeURIComponent(token)}` : "/api/v1/events");
    source.onmessage = () => refresh();
    // The API's topics (docs/api.md), and "reset": the stream could not replay all that was missed.
    const names = ["session.started", "session.progress", "session.stopped", "charger.status", "wallet.topup", "wallet.deposit", "wallet.withdrawal", "balance.low", "balance.recovered", "reset"];
    for (const name of names) {
      source.addEventListener(name, () => refresh());
    }
    timer = setInterval(refresh, everyMs * 5); // a safety net for missed events
  } else {
    timer = setInterval(refresh, everyMs);
  }
  return stop;
}
