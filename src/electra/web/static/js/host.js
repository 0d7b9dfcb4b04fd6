// The host: chargers held by the wallet with their live state, earnings over time, registering a
// charger (the wallet sends the NFT registration), tariff within the DAO's bounds, leasing windows,
// utilization by hour of the week, staking, maintenance tickets.
/* global Chart */
import { $, api, badge, config, el, formatUnits, kw, mountWallet, pageSize, pager, say, sayError, signedAction, txBlock, unitsToNumber, wallet, when } from "./common.js";

let host = null;
let selected = null;
let offset = 0; // which page of the host's chargers is shown (newest first)
const PAGE_SIZE = pageSize();
let earningsChart = null;
const PALETTE = ["#0a55b8", "#b35900", "#116329", "#8250df", "#b3141f", "#1b7c83", "#6e5400", "#4b535d"];

function chargerRow(c) {
  return el(
    "tr",
    { id: `charger-${c.charger_id}` },
    el("th", { scope: "row" }, c.charger_id),
    el("td", {}, badge(c.status)),
    el("td", { class: "num" }, kw(c.max_power_w)),
    el("td", {}, c.connector_types.join(", ")),
    el("td", {}, `${c.tariff.per_kwh} ${c.tariff.asset}/kWh`),
    el("td", {}, c.lease.public ? `public${c.lease.windows.length ? " " + c.lease.windows.join(", ") : ""}` : "private"),
    el("td", {}, c.stake ? `tier ${c.stake.tier} (${c.stake.bonded_elc} ELC)` : "–"),
    el("td", {}, el("button", { type: "button", class: "secondary", onclick: () => manage(c.charger_id) }, `Manage ${c.charger_id}`)),
  );
}

function showPage(to) {
  offset = to;
  loadHost().catch((err) => sayError("#wallet-message", err));
}

function renderChargers() {
  const box = $("#chargers");
  if (!host.chargers.length) {
    box.replaceChildren(el("p", {}, "This wallet holds no charger yet: register one below."));
    return;
  }
  const { offset: first, total } = host.page;
  const shown = total > host.chargers.length ? `; ${first + 1}-${first + host.chargers.length} shown, newest first` : "";
  box.replaceChildren(
    el(
      "div",
      { class: "table-wrap", tabindex: "0", role: "region", "aria-label": "Scrollable table" },
      el(
        "table",
        {},
        el("caption", {}, `${total} chargers held by ${host.address}${shown}`),
        el(
          "thead",
          {},
          el("tr", {}, ...["Charger", "Now", "Power", "Connectors", "Tariff", "Lease", "Stake", ""].map((h) => el("th", { scope: "col" }, h))),
        ),
        el("tbody", {}, host.chargers.map(chargerRow)),
      ),
    ),
    pager(host.page, showPage, { id: "chargers", label: "Pages of your chargers", back: "Newer chargers", forward: "Older chargers" }),
  );
}

function renderTotals() {
  const parts = Object.entries(host.earnings).map(([s, e]) => el("li", {}, el("strong", {}, `${e.amount} ${s}`), " not yet withdrawn"));
  $("#earnings-totals").replaceChildren(el("ul", { id: "earnings-unwithdrawn" }, parts));
}

async function loadEarnings() {
  const cfg = await config();
  const series = await api(`/api/v1/web/hosts/${wallet.account}/earnings`);
  const labels = series.buckets.map((t) => (series.bucket === "hour" ? when(t).slice(5, 16) : when(t).slice(0, 10)));
  const datasets = series.series.map((s, i) => ({
    label: `${s.charger_id} (${s.asset})`,
    data: s.amounts.map((a) => unitsToNumber(a, (cfg.assets[s.asset] || { decimals: 0 }).decimals)),
    backgroundColor: PALETTE[i % PALETTE.length],
  }));
  if (earningsChart) earningsChart.destroy();
  earningsChart = new Chart($("#earnings-chart"), {
    type: "bar",
    data: { labels, datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: { x: { stacked: true, title: { display: true, text: `per ${series.bucket} (UTC)` } }, y: { stacked: true, beginAtZero: true } },
    },
  });
  const totals = Object.entries(series.totals).map(([s, v]) => `${formatUnits(v, (cfg.assets[s] || { decimals: 0 }).decimals)} ${s}`);
  $("#earnings-summary").textContent = series.sessions
    ? `Paid for ${series.sessions} settled sessions: ${totals.join(", ")} after the protocol fee.`
    : "No settled sessions yet.";
  document.body.dataset.earningsSessions = String(series.sessions);
}

async function loadHost() {
  if (!wallet.account) return;
  if (!wallet.signedIn) {
    // What is yours (balances, sessions, earnings) is shown to your signed-in wallet only.
    $("#signed-out-note").hidden = false;
    $("#signed-out-note").textContent = "Sign in with your wallet to see your chargers.";
    return;
  }
  $("#signed-out-note").hidden = true;
  $("#register-button").disabled = false;
  host = await api(`/api/v1/web/hosts/${wallet.account}?offset=${offset}&limit=${PAGE_SIZE}`);
  if (host.page.total && offset >= host.page.total) {
    offset = Math.floor((host.page.total - 1) / PAGE_SIZE) * PAGE_SIZE; // chargers were sold meanwhile
    return loadHost();
  }
  renderChargers();
  renderTotals();
  await loadEarnings();
  if (selected) await manage(selected, false);
  document.body.dataset.hostLoaded = String(Number(document.body.dataset.hostLoaded || 0) + 1);
}

// ------------------------------------------------------------------ one charger

function fillTariff(c) {
  const t = c.tariff;
  $("#t-asset").value = t.asset;
  $("#t-kwh").value = t.per_kwh;
  $("#t-hour").value = t.per_hour;
  $("#t-fee").value = t.session_fee_text;
  $("#t-idle").value = t.idle_per_hour;
  $("#t-grace").value = String(t.idle_grace_min);
  showBounds();
}

function showBounds() {
  const b = host.tariff_bounds[$("#t-asset").value];
  if (!b) return;
  $("#t-kwh").max = b.max_per_kwh;
  $("#t-hour").max = b.max_per_hour;
  $("#t-fee").max = b.max_session_fee;
  $("#t-idle").max = b.max_idle_per_hour;
  $("#t-kwh-max").textContent = `at most ${b.max_per_kwh}`;
  $("#t-hour-max").textContent = `at most ${b.max_per_hour}`;
  $("#t-fee-max").textContent = `at most ${b.max_session_fee}`;
  $("#t-idle-max").textContent = `at most ${b.max_idle_per_hour}`;
}

function fillLease(c) {
  $(c.lease.public ? "#l-public" : "#l-private").checked = true;
  $("#l-windows").value = c.lease.windows.join("\n");
  $("#l-allowed").value = c.lease.allowed_vehicles.join(", ");
}

async function renderHeatmap(chargerId) {
  const u = await api(`/api/v1/web/chargers/${encodeURIComponent(chargerId)}/utilization`);
  const hours = Array.from({ length: 24 }, (_, h) => h);
  const shade = (p) => (p === 0 ? 0 : p < 150 ? 1 : p < 350 ? 2 : p < 650 ? 3 : 4);
  const table = el(
    "table",
    { class: "heatmap", id: "heatmap-table" },
    el("caption", {}, `Share of the time ${chargerId}'s ${u.connectors} connector(s) were busy, ${when(u.from_ms).slice(0, 10)} to ${when(u.to_ms).slice(0, 10)}, from ${u.sessions} sessions`),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "Day"), ...hours.map((h) => el("th", { scope: "col" }, String(h).padStart(2, "0"))))),
    el(
      "tbody",
      {},
      u.permille.map((row, d) =>
        el(
          "tr",
          {},
          el("th", { scope: "row" }, u.days[d]),
          ...row.map((p, h) => el("td", { class: `h${shade(p)}`, title: `${u.days[d]} ${String(h).padStart(2, "0")}:00 ${(p / 10).toFixed(1)}% busy` }, p ? String(Math.round(p / 10)) : "")),
        ),
      ),
    ),
  );
  $("#heatmap").replaceChildren(table, el("p", { class: "hint" }, "Numbers are percent busy; empty cells were idle."));
}

async function renderStake(c) {
  const s = host.staking;
  const box = $("#stake-info");
  if (!s) {
    box.replaceChildren(el("p", {}, "This deployment has no StakingManager."));
    $("#stake-form").hidden = true;
    return;
  }
  const pos = host.positions[c.charger_id] || { bonded: "0", unbonding: "0", release_at: 0 };
  box.replaceChildren(
    el(
      "dl",
      { class: "kv" },
      el("dt", {}, "Your ELC"), el("dd", {}, `${formatUnits(s.elc_balance, 18)} ELC`),
      el("dt", {}, "Staked here"), el("dd", {}, `${formatUnits(pos.bonded, 18)} ELC`),
      el("dt", {}, "Unbonding"), el("dd", {}, `${formatUnits(pos.unbonding, 18)} ELC${pos.release_at ? `, released ${when(pos.release_at * 1000)}` : ""}`),
      el("dt", {}, "Tier"), el("dd", {}, c.stake ? `${c.stake.tier} (fee discount ${c.stake.discount_bps / 100} %, discovery boost ${c.stake.boost_bps / 100} %)` : "–"),
      el("dt", {}, "Protocol fee"), el("dd", {}, `${s.protocol_fee_bps / 100} %`),
    ),
    el(
      "table",
      {},
      el("caption", {}, "Staking tiers"),
      el("thead", {}, el("tr", {}, ...["Tier", "Minimum stake", "Fee discount", "Boost"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, s.tiers.map((t, i) => el("tr", {}, el("td", {}, String(i + 1)), el("td", {}, `${t.min_stake_elc} ELC`), el("td", {}, `${t.discount_bps / 100} %`), el("td", {}, `${t.boost_bps / 100} %`)))),
    ),
  );
  $("#stake-form").hidden = false;
}

async function renderTickets(chargerId) {
  const { items } = await api(`/api/v1/host/chargers/${encodeURIComponent(chargerId)}/tickets`);
  $("#tickets").replaceChildren(
    items.length
      ? el(
          "ul",
          {},
          items.map((t) => el("li", {}, badge(t.status, t.status === "closed" ? "yes" : "wait"), ` #${t.id}, risk ${t.risk_permille / 10} %: ${t.reasons.join("; ")}`)),
        )
      : el("p", { id: "no-tickets" }, `No maintenance tickets for ${chargerId}.`),
  );
}

async function manage(chargerId, focus = true) {
  selected = chargerId;
  const c = host.chargers.find((x) => x.charger_id === chargerId);
  if (!c) return;
  $("#manage").hidden = false;
  $("#manage-title").textContent = `Charger ${chargerId}`;
  fillTariff(c);
  fillLease(c);
  await Promise.all([renderHeatmap(chargerId), renderStake(c), renderTickets(chargerId)]);
  if (focus) {
    $("#manage-title").setAttribute("tabindex", "-1");
    $("#manage-title").focus();
  }
}

async function saveTariff(ev) {
  ev.preventDefault();
  const box = $("#tariff-message");
  const params = {
    charger_id: selected,
    asset: $("#t-asset").value,
    per_kwh: $("#t-kwh").value,
    per_hour: $("#t-hour").value || "0",
    session_fee: $("#t-fee").value || "0",
    idle_per_hour: $("#t-idle").value || "0",
    idle_grace_min: $("#t-grace").value || "0",
  };
  try {
    const done = await signedAction("tariff", params, box);
    const t = done.result.tariff;
    say(box, `Tariff of ${selected} saved: ${t.per_kwh} ${t.asset} per kWh, ${t.session_fee_text} per session.`, "ok");
    await loadHost();
  } catch (err) {
    sayError(box, err);
  }
}

async function saveLease(ev) {
  ev.preventDefault();
  const box = $("#lease-message");
  const params = {
    charger_id: selected,
    public: $("#l-public").checked,
    windows: $("#l-windows").value.split("\n").map((w) => w.trim()).filter(Boolean),
    allowed_vehicles: $("#l-allowed").value.split(",").map((v) => v.trim()).filter(Boolean),
  };
  try {
    const done = await signedAction("lease", params, box);
    const l = done.result;
    say(box, `Lease of ${selected} saved: ${l.public ? "public" : "private"}${l.windows.length ? ", " + l.windows.join(", ") : ", at any time"}.`, "ok");
    await loadHost();
  } catch (err) {
    sayError(box, err);
  }
}

async function stake(ev) {
  ev.preventDefault();
  const box = $("#stake-message");
  try {
    const { transactions } = await api("/api/v1/web/staking/transactions", {
      method: "POST",
      body: { account: wallet.account, charger_id: selected, action: $("#s-action").value, amount: $("#s-amount").value },
    });
    $("#stake-tx").replaceChildren(...transactions.map(txBlock));
    for (const [i, tx] of transactions.entries()) {
      say(box, `Confirm transaction ${i + 1} of ${transactions.length} in your wallet: ${tx.summary}.`, "info");
      await wallet.send(tx);
    }
    say(box, "Staking updated on-chain.", "ok");
    await loadHost();
  } catch (err) {
    sayError(box, err);
  }
}

async function register(ev) {
  ev.preventDefault();
  const box = $("#register-message");
  const chargerId = $("#reg-id").value.trim();
  const connectors = Array.from(document.querySelectorAll("#reg-connectors input:checked"), (i) => i.value);
  $("#register-button").disabled = true;
  try {
    const tx = await api("/api/v1/web/stations/registration", {
      method: "POST",
      body: {
        owner: wallet.account,
        charger_id: chargerId,
        latitude: $("#reg-lat").value.trim(),
        longitude: $("#reg-lon").value.trim(),
        power_kw: $("#reg-power").value,
        connectors,
        operator_id: $("#reg-operator").value.trim(),
      },
    });
    $("#register-tx").replaceChildren(txBlock(tx), el("p", { class: "hint" }, `The charger's device key ${tx.device} signed the onboarding.`));
    say(box, "Confirm the registration in your wallet.", "info");
    const receipt = await wallet.send(tx);
    say(box, `Registered ${chargerId} in block ${parseInt(receipt.blockNumber, 16)}: the NFT is yours.`, "ok");
    selected = chargerId;
    offset = 0; // newest first: the new charger is on the first page
    await loadHost();
  } catch (err) {
    sayError(box, err);
  } finally {
    $("#register-button").disabled = !wallet.account;
  }
}

async function main() {
  mountWallet();
  const cfg = await config();
  const box = $("#reg-connectors");
  for (const c of cfg.connectors) {
    box.append(
      el(
        "span",
        { class: "field check" },
        el("input", { type: "checkbox", id: `conn-${c}`, value: c, checked: c === "type2" }),
        el("label", { for: `conn-${c}` }, c),
      ),
    );
  }
  $("#t-asset").addEventListener("change", showBounds);
  $("#tariff-form").addEventListener("submit", saveTariff);
  $("#lease-form").addEventListener("submit", saveLease);
  $("#stake-form").addEventListener("submit", stake);
  $("#register-form").addEventListener("submit", register);
  wallet.onChange(() => loadHost().catch((err) => sayError("#wallet-message", err)));
  document.body.dataset.ready = "true";
}

main();
