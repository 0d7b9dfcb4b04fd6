// The driver: vehicles and balances, a fiat top-up, finding a charger and starting a charge with an
// EIP-712 charge authorization, the charge as it runs, receipts and their proofs checked on-chain.
/* global Chart */
import {
  $,
  api,
  badge,
  config,
  el,
  follow,
  formatUnits,
  kw,
  kwh,
  mountWallet,
  pageSize,
  pager,
  say,
  sayError,
  signedAction,
  wallet,
  when,
} from "./common.js";

let vehicles = [];
let vehicleId = null;
let page = { offset: 0, limit: pageSize(), total: 0 }; // a fleet's vehicles come a page at a time
let live = null; // {sessionId, stop, chart}
let receiptsTimer = null;
let lastSettled = -1;

// An asset by symbol (settlements) or address (authorizations): [symbol, decimals], or null.
function assetOf(cfg, asset) {
  if (!asset) return null;
  if (cfg.assets[asset]) return [asset, cfg.assets[asset].decimals];
  const hit = Object.entries(cfg.assets).find(([, a]) => a.address.toLowerCase() === String(asset).toLowerCase());
  return hit ? [hit[0], hit[1].decimals] : null;
}

function renderVehicles() {
  const box = $("#vehicles");
  if (!vehicles.length) {
    box.replaceChildren(el("p", {}, "This wallet owns no vehicle yet: onboard one with `electra vehicle register`."));
    $("#topup-form").hidden = true;
    return;
  }
  const rows = vehicles.map((v) =>
    el(
      "tr",
      {},
      el(
        "td",
        {},
        el("input", {
          type: "radio",
          name: "vehicle",
          id: `vehicle-${v.vehicle_id}`,
          value: String(v.vehicle_id),
          checked: v.vehicle_id === vehicleId,
          onchange: () => chooseVehicle(v.vehicle_id),
        }),
        " ",
        el("label", { for: `vehicle-${v.vehicle_id}` }, `Vehicle ${v.vehicle_id}`),
      ),
      el("td", { class: "num", id: `balance-${v.vehicle_id}-EUSD` }, `${v.balances.EUSD.amount} EUSD`),
      el("td", { class: "num" }, `${v.balances.ELC.amount} ELC`),
      el("td", {}, v.balances.EUSD.alert_firing ? badge("low", "fail") : v.active ? badge("active", "yes") : badge("inactive", "no")),
    ),
  );
  box.replaceChildren(
    el(
      "div",
      { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Scrollable table" },
      el(
        "table",
        {},
        el(
          "caption",
          {},
          "Balances on PaymentHub (read from the chain)",
          page.total > vehicles.length ? `; vehicles ${page.offset + 1}-${page.offset + vehicles.length} of ${page.total}` : "",
        ),
        el(
          "thead",
          {},
          el("tr", {}, el("th", { scope: "col" }, "Vehicle"), el("th", { scope: "col", class: "num" }, "EUSD"),
            el("th", { scope: "col", class: "num" }, "ELC"), el("th", { scope: "col" }, "State")),
        ),
        el("tbody", {}, rows),
      ),
    ),
    pager(page, showVehicles, { id: "vehicles", label: "Pages of your vehicles", back: "Previous vehicles", forward: "Next vehicles" }),
  );
  $("#topup-form").hidden = false;
}

function showVehicles(offset) {
  page = { ...page, offset };
  loadDriver().catch((err) => sayError("#wallet-message", err));
}

async function loadDriver() {
  if (!wallet.account) return;
  if (!wallet.signedIn) {
    // What is yours (balances, sessions, earnings) is shown to your signed-in wallet only.
    $("#signed-out-note").hidden = false;
    $("#signed-out-note").textContent = "Sign in with your wallet to see your vehicles.";
    return;
  }
  $("#signed-out-note").hidden = true;
  const data = await api(`/api/v1/web/drivers/${wallet.account}?offset=${page.offset}&limit=${page.limit}`);
  if (data.page.total && page.offset >= data.page.total) {
    page = { ...page, offset: Math.floor((data.page.total - 1) / page.limit) * page.limit };
    return loadDriver();
  }
  page = data.page;
  vehicles = data.vehicles;
  if (!vehicles.find((v) => v.vehicle_id === vehicleId)) vehicleId = vehicles.length ? vehicles[0].vehicle_id : null;
  renderVehicles();
  $("#start-button").disabled = vehicleId === null;
  if (vehicleId !== null) await Promise.all([loadReceipts(), loadHistory()]);
}

async function chooseVehicle(id) {
  vehicleId = id;
  await Promise.all([loadReceipts(), loadHistory()]);
}

// ------------------------------------------------------------------ top-up

async function topUp(ev) {
  ev.preventDefault();
  const box = $("#topup-message");
  const amount = Number($("#topup-amount").value).toFixed(2);
  $("#topup-button").disabled = true;
  try {
    const done = await signedAction("topup", { vehicle_id: vehicleId, amount, currency: "EUR" }, box);
    say(box, `Credited ${done.result.credited} EUSD to vehicle ${vehicleId}; balance ${done.result.balance} EUSD.`, "ok");
    await loadDriver();
  } catch (err) {
    sayError(box, err);
  } finally {
    $("#topup-button").disabled = false;
  }
}

// ------------------------------------------------------------------ finding and starting

async function findNear(ev) {
  if (ev) ev.preventDefault();
  const p = new URLSearchParams({ lat: $("#near-lat").value.trim(), lon: $("#near-lon").value.trim(), k: "5" });
  if ($("#near-available").checked) p.set("available", "true");
  const cfg = await config();
  try {
    const answer = await api(`/api/v1/stations/nearby?${p}`);
    $("#near-results").replaceChildren(
      ...answer.items.map((i) => {
        const asset = cfg.assets[i.asset];
        const price = asset ? `${formatUnits(String(BigInt(i.price_per_wh) * 1000n), asset.decimals)} ${i.asset}/kWh` : "";
        return el(
          "li",
          {},
          el("strong", {}, i.charger_id),
          " ",
          badge(i.availability),
          ` ${(i.distance_m / 1000).toFixed(1)} km · ${kw(i.max_power_w)} · ${price}`,
          el(
            "div",
            { class: "actions" },
            el("button", { type: "button", class: "secondary", onclick: () => pick(i.charger_id) }, `Choose ${i.charger_id}`),
          ),
        );
      }),
    );
  } catch (err) {
    sayError("#start-message", err);
  }
}

function pick(chargerId) {
  $("#charger-id").value = chargerId;
  $("#start-button").focus();
}

async function startCharge(ev) {
  ev.preventDefault();
  const box = $("#start-message");
  const chargerId = $("#charger-id").value.trim();
  const maxAmount = Number($("#max-amount").value).toFixed(2);
  $("#start-button").disabled = true;
  try {
    const prepared = await api("/api/v1/web/charges/authorization", {
      method: "POST",
      body: { vehicle_id: vehicleId, charger_id: chargerId, max_amount: maxAmount, asset: "EUSD" },
    });
    say(box, `Sign the charge authorization in your wallet: at most ${maxAmount} EUSD at ${chargerId}.`, "info");
    const signature = await wallet.signTypedData(prepared.typed_data);
    const since = Date.now() - 60000;
    const started = await api("/api/v1/web/charges", {
      method: "POST",
      body: { charger_id: chargerId, authorization: { ...prepared.authorization, signature } },
    });
    say(box, `${chargerId} accepted the start (${started.charger_answer.status}). Waiting for the session…`, "ok");
    await waitForSession(chargerId, since);
  } catch (err) {
    sayError(box, err);
  } finally {
    $("#start-button").disabled = vehicleId === null;
  }
}

async function waitForSession(chargerId, sinceMs) {
  for (let i = 0; i < 60; i += 1) {
    const { items } = await api(`/api/v1/web/vehicles/${vehicleId}/sessions?limit=5`);
    const s = items.find((x) => x.charger_id === chargerId && x.status === "active" && x.started_at_ms >= sinceMs - 3600000);
    if (s) {
      await followSession(s.session_id);
      await loadReceipts();
      return;
    }
    await new Promise((ok) => setTimeout(ok, 1000));
  }
  throw new Error(`${chargerId} accepted but no session started within a minute`);
}

// ------------------------------------------------------------------ live progress

function liveChart() {
  return new Chart($("#live-chart"), {
    type: "line",
    data: { datasets: [{ label: "Energy delivered (kWh)", data: [], borderColor: "#0a55b8", backgroundColor: "#0a55b8", pointRadius: 0 }] },
    options: {
      animation: false,
      maintainAspectRatio: false,
      parsing: false,
      scales: {
        x: { type: "linear", title: { display: true, text: "minutes since start" } },
        y: { beginAtZero: true, title: { display: true, text: "kWh" } },
      },
    },
  });
}

async function followSession(sessionId) {
  if (live) live.stop();
  $("#live").hidden = false;
  const chart = live && live.chart ? live.chart : liveChart();
  live = { sessionId, chart, stop: () => {} };
  const refresh = async () => {
    let s;
    try {
      s = await api(`/api/v1/web/sessions/${sessionId}`);
    } catch (err) {
      sayError("#live-message", err);
      return;
    }
    const running = s.status === "active";
    const minutes = ((s.stopped_at_ms || Date.now()) - s.started_at_ms) / 60000;
    $("#live-state").replaceChildren(
      el(
        "p",
        {},
        `Session ${s.session_id} at ${s.charger_id}, connector ${s.connector_id}: `,
        badge(running ? "charging" : s.status, running ? "charging" : s.status),
      ),
      el(
        "div",
        { class: "live-figures" },
        el("div", {}, el("div", { class: "hint" }, "Energy"), el("div", { class: "value", id: "live-energy" }, kwh(s.energy_so_far_wh))),
        el("div", {}, el("div", { class: "hint" }, "Power"), el("div", { class: "value" }, s.power_w === null ? "–" : kw(s.power_w))),
        el("div", {}, el("div", { class: "hint" }, "Time"), el("div", { class: "value" }, `${Math.max(0, minutes).toFixed(0)} min`)),
      ),
    );
    chart.data.datasets[0].data = s.readings.map((r) => ({ x: (r.at_ms - s.started_at_ms) / 60000, y: r.energy_wh / 1000 }));
    chart.update();
    $("#stop-button").hidden = !running;
    document.body.dataset.liveStatus = s.status;
    if (!running) {
      live.stop();
      say("#live-message", `Session ${s.session_id} ended: ${kwh(s.energy_wh || 0)}. Its receipt follows below once it is billed.`, "ok");
      await loadReceipts();
    }
  };
  live.stop = await follow(refresh, 1500);
  $("#stop-button").onclick = async () => {
    $("#stop-button").disabled = true;
    try {
      await signedAction("stop", { session_id: sessionId }, "#live-message");
      say("#live-message", "The charger was asked to stop.", "info");
    } catch (err) {
      sayError("#live-message", err);
    } finally {
      $("#stop-button").disabled = false;
    }
  };
  await refresh();
}

// ------------------------------------------------------------------ receipts and proofs

function settlementBadge(s) {
  if (s.status === "active") return badge("charging", "charging");
  return s.settlement ? badge(s.settlement) : badge("not billed yet", "wait");
}

async function loadReceipts() {
  if (vehicleId === null) return;
  const cfg = await config();
  const { items } = await api(`/api/v1/web/vehicles/${vehicleId}/sessions?limit=20`);
  const active = items.find((s) => s.status === "active");
  if (active && (!live || live.sessionId !== active.session_id)) followSession(active.session_id);
  if (!items.length) {
    $("#receipts").replaceChildren(el("p", {}, "No sessions yet."));
    return;
  }
  const rows = items.map((s) => {
    const asset = assetOf(cfg, s.asset);
    const cost = s.amount !== null && asset ? `${formatUnits(s.amount, asset[1])} ${asset[0]}` : s.amount || "–";
    return el(
      "tr",
      { id: `session-${s.session_id}` },
      el("th", { scope: "row" }, String(s.session_id)),
      el("td", {}, s.charger_id),
      el("td", {}, when(s.started_at_ms)),
      el("td", { class: "num" }, s.energy_wh === null ? "–" : kwh(s.energy_wh)),
      el("td", { class: "num" }, cost),
      el("td", {}, settlementBadge(s)),
      el("td", {}, s.anchoring.anchored ? badge("anchored", "yes") : badge(s.anchoring.recorded ? "recorded" : "not yet", "wait")),
      el(
        "td",
        {},
        el("button", { type: "button", class: "secondary", onclick: () => showReceipt(s.session_id) }, `Receipt ${s.session_id}`),
        " ",
        el(
          "button",
          { type: "button", disabled: !s.anchoring.anchored, onclick: () => verify(s.session_id) },
          `Verify ${s.session_id} on chain`,
        ),
      ),
    );
  });
  $("#receipts").replaceChildren(
    el(
      "div",
      { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Scrollable table" },
      el(
        "table",
        {},
        el("caption", {}, `Sessions of vehicle ${vehicleId}, newest first`),
        el(
          "thead",
          {},
          el(
            "tr",
            {},
            ...["Session", "Charger", "Started", "Energy", "Cost", "Settlement", "Proof", "Actions"].map((h) =>
              el("th", { scope: "col" }, h),
            ),
          ),
        ),
        el("tbody", {}, rows),
      ),
    ),
  );
  const pending = items.some((s) => s.status === "active" || s.settlement !== "settled" || !s.anchoring.anchored);
  clearTimeout(receiptsTimer);
  if (pending) receiptsTimer = setTimeout(() => loadReceipts().catch((err) => sayError("#live-message", err)), 2500);
  const settled = items.filter((s) => s.settlement === "settled").length;
  if (settled !== lastSettled) {
    lastSettled = settled;
    await loadHistory(); // a settled session adds its charge to the wallet's history
  }
}

async function showReceipt(sessionId) {
  const box = $("#receipt-detail");
  const s = await api(`/api/v1/web/sessions/${sessionId}`);
  const r = s.receipt;
  if (!r) {
    box.replaceChildren(el("p", { class: "message info", role: "status" }, `Session ${sessionId} is not billed yet.`));
    return;
  }
  const cfg = await config();
  const asset = assetOf(cfg, r.asset);
  const fmt = (v) => (asset ? `${formatUnits(String(v), asset[1])} ${asset[0]}` : String(v));
  box.replaceChildren(
    el("h3", { id: "receipt-title", tabindex: "-1" }, `Receipt for session ${sessionId}`),
    el(
      "dl",
      { class: "kv" },
      el("dt", {}, "Charger"), el("dd", {}, r.charger_id),
      el("dt", {}, "Energy"), el("dd", {}, kwh((r.usage || {}).energy_wh || 0)),
      ...Object.entries(r.cost || {}).flatMap(([line, v]) => [el("dt", {}, line), el("dd", {}, fmt(v))]),
      el("dt", {}, "Charged"), el("dd", {}, fmt(r.amount)),
      el("dt", {}, "Status"), el("dd", {}, r.status + (r.reason ? ` (${r.reason})` : "")),
      el("dt", {}, "Settlement transaction"), el("dd", { class: "mono" }, r.settlement_tx || "–"),
      el("dt", {}, "Paid to"), el("dd", { class: "mono" }, r.payee || "–"),
      el("dt", {}, "Record hash"), el("dd", { class: "mono" }, r.record_hash),
    ),
  );
  $("#receipt-title").focus();
}

async function verify(sessionId) {
  const box = $("#receipt-detail");
  box.replaceChildren(el("p", { class: "message info", role: "status" }, `Checking session ${sessionId} against the chain…`));
  try {
    const bundle = await api(`/api/v1/sessions/${sessionId}/proof?verify=true`);
    const v = bundle.verification;
    box.replaceChildren(
      el("h3", { id: "verify-title", tabindex: "-1" }, `Proof of session ${sessionId}: `, badge(v.verified ? "verified" : "failed", v.verified ? "pass" : "fail")),
      el(
        "ul",
        { class: "checks", id: "verify-checks", "aria-label": "Each check of the proof" },
        v.checks.map((c) => el("li", { "data-check": c.name }, badge(c.status), el("strong", {}, c.name), el("span", {}, c.detail))),
      ),
      el("p", { class: "hint" }, "Anyone can repeat this with only an RPC URL: ", el("code", {}, `electra verify ${sessionId}`)),
    );
    $("#verify-title").focus();
  } catch (err) {
    sayError(box, err);
  }
}

async function loadHistory() {
  if (vehicleId === null) return;
  const { events } = await api(`/api/v1/web/vehicles/${vehicleId}/history?limit=20`);
  if (!events.length) {
    $("#history").replaceChildren(el("p", {}, "No history yet."));
    return;
  }
  $("#history").replaceChildren(
    el(
      "div",
      { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Scrollable table" },
      el(
        "table",
        {},
        el("caption", {}, `Deposits, top-ups and charges of vehicle ${vehicleId}`),
        el("thead", {}, el("tr", {}, ...["When", "What", "Amount", "Reference"].map((h) => el("th", { scope: "col" }, h)))),
        el(
          "tbody",
          {},
          events.map((e) =>
            el("tr", {}, el("td", {}, when(e.at_ms)), el("td", {}, e.kind), el("td", { class: "num" }, `${e.shown} ${e.asset}`),
              el("td", { class: "mono" }, e.reference.length > 24 ? `${e.reference.slice(0, 22)}…` : e.reference)),
          ),
        ),
      ),
    ),
  );
}

async function main() {
  mountWallet();
  const charger = new URLSearchParams(location.search).get("charger");
  if (charger) $("#charger-id").value = charger;
  $("#topup-form").addEventListener("submit", topUp);
  $("#start-form").addEventListener("submit", startCharge);
  $("#near-form").addEventListener("submit", findNear);
  wallet.onChange(() => loadDriver().catch((err) => sayError("#wallet-message", err)));
  await findNear();
  document.body.dataset.ready = "true";
}

main();
