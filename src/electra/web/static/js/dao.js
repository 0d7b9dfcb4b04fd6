// The DAO: governed parameters, proposals with their state and votes, a parameter-change proposal
// and votes sent by the member's wallet. Every transaction is shown before the wallet sends it.
import { $, api, badge, el, formatUnits, mountWallet, say, sayError, txBlock, wallet, when } from "./common.js";

let overview = null;

function elc(units) {
  return `${formatUnits(units, 18)} ELC`;
}

function renderPower() {
  const a = overview.account;
  if (!a) return;
  const noVotes = BigInt(a.votes) === 0n && BigInt(a.elc_balance) > 0n;
  $("#power").replaceChildren(
    el(
      "dl",
      { class: "kv" },
      el("dt", {}, "ELC held"), el("dd", {}, elc(a.elc_balance)),
      el("dt", {}, "Votes"), el("dd", { id: "my-votes" }, elc(a.votes)),
      el("dt", {}, "Delegated to"), el("dd", { class: "mono" }, a.delegate === "0x0000000000000000000000000000000000000000" ? "nobody yet" : a.delegate),
    ),
    ...(noVotes
      ? [el("button", { type: "button", id: "delegate-button", onclick: delegate }, "Vote with my own ELC (delegate to myself)")]
      : []),
  );
}

function renderParams() {
  const rows = overview.parameters.map((p) =>
    el("tr", {}, el("th", { scope: "row" }, p.name), el("td", { class: "mono" }, p.kind === "amount" && p.value !== null ? `${elc(p.value)} (${p.shown})` : p.shown ?? "–"), el("td", {}, p.unit), el("td", {}, p.description)),
  );
  $("#params").replaceChildren(
    el(
      "table",
      {},
      el("caption", {}, "What the timelock holds now"),
      el("thead", {}, el("tr", {}, ...["Parameter", "Value", "Unit", "What it does"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows),
    ),
  );
  const select = $("#p-name");
  if (!select.options.length) {
    for (const p of overview.parameters) select.append(el("option", { value: p.name }, p.name));
    select.addEventListener("change", showUnit);
  }
  showUnit();
}

function showUnit() {
  const p = overview.parameters.find((x) => x.name === $("#p-name").value);
  if (p) $("#p-unit").textContent = `${p.unit}; now ${p.shown ?? "unset"}`;
}

function actionText(a) {
  if (!a.function) return `${a.contract || a.target}: ${a.calldata.slice(0, 18)}…`;
  return `${a.contract}.${a.function}(${Object.values(a.args).map((v) => JSON.stringify(v)).join(", ")})`;
}

function renderProposals() {
  if (!overview.proposals.length) {
    $("#proposals").replaceChildren(el("p", {}, "No proposals yet."));
    return;
  }
  $("#proposals").replaceChildren(
    ...overview.proposals.map((p) => {
      const id = p.proposal_id;
      const short = `${id.slice(0, 8)}…`;
      const buttons = [];
      if (wallet.account && p.can_vote && !p.has_voted) {
        for (const support of ["for", "against", "abstain"]) {
          buttons.push(el("button", { type: "button", onclick: () => vote(id, support) }, `Vote ${support} on ${short}`));
        }
      }
      if (wallet.account && p.can_queue) buttons.push(el("button", { type: "button", onclick: () => step(id, "queue") }, `Queue ${short}`));
      if (wallet.account && p.can_execute) buttons.push(el("button", { type: "button", onclick: () => step(id, "execute") }, `Execute ${short}`));
      return el(
        "article",
        { class: "panel", "data-proposal": id, "aria-labelledby": `proposal-${id}` },
        el("h3", { id: `proposal-${id}` }, p.description, " ", badge(p.state)),
        el(
          "dl",
          { class: "kv" },
          el("dt", {}, "Proposal"), el("dd", { class: "mono" }, id),
          el("dt", {}, "Votes"), el("dd", { class: "votes" }, `for ${elc(p.votes_for)} · against ${elc(p.votes_against)} · abstain ${elc(p.votes_abstain)}`),
          el("dt", {}, "Quorum"), el("dd", {}, p.quorum === "0" ? "set when voting starts" : elc(p.quorum)),
          el("dt", {}, "Voting"), el("dd", {}, `${when(p.vote_start * 1000)} to ${when(p.vote_end * 1000)}`),
          el("dt", {}, "Does"), el("dd", {}, el("ul", {}, p.actions.map((a) => el("li", { class: "mono" }, actionText(a))))),
          p.has_voted ? [el("dt", {}, "You"), el("dd", {}, "voted")] : null,
        ),
        buttons.length ? el("div", { class: "actions" }, buttons) : null,
      );
    }),
  );
}

async function load() {
  const q = wallet.account ? `?account=${wallet.account}` : "";
  overview = await api(`/api/v1/web/dao${q}`);
  renderPower();
  renderParams();
  renderProposals();
  document.body.dataset.daoLoaded = String(Number(document.body.dataset.daoLoaded || 0) + 1);
}

async function sendShown(tx, txBox, msgBox, done) {
  txBox.replaceChildren(txBlock(tx));
  if (!wallet.account) {
    say(msgBox, "Connect a wallet to send this, or send the same transaction from any wallet.", "info");
    return;
  }
  say(msgBox, `Confirm in your wallet: ${tx.summary}.`, "info");
  const receipt = await wallet.send(tx);
  say(msgBox, `${done} (block ${parseInt(receipt.blockNumber, 16)}).`, "ok");
  await load();
}

async function propose(ev) {
  ev.preventDefault();
  const box = $("#propose-message");
  try {
    const tx = await api("/api/v1/web/dao/proposals", {
      method: "POST",
      body: {
        proposer: wallet.account || "0x0000000000000000000000000000000000000000",
        changes: [{ name: $("#p-name").value, value: $("#p-value").value.trim() }],
        description: $("#p-description").value.trim(),
      },
    });
    await sendShown(tx, $("#propose-tx"), box, "Proposed");
  } catch (err) {
    sayError(box, err);
  }
}

async function vote(id, support) {
  const box = $("#vote-message");
  try {
    const tx = await api("/api/v1/web/dao/votes", { method: "POST", body: { voter: wallet.account, proposal_id: id, support } });
    await sendShown(tx, $("#vote-tx"), box, `Voted ${support}`);
  } catch (err) {
    sayError(box, err);
  }
}

async function step(id, which) {
  const box = $("#vote-message");
  try {
    const tx = await api("/api/v1/web/dao/steps", { method: "POST", body: { sender: wallet.account, proposal_id: id, step: which } });
    await sendShown(tx, $("#vote-tx"), box, which === "queue" ? "Queued in the timelock" : "Executed");
  } catch (err) {
    sayError(box, err);
  }
}

async function delegate() {
  const box = $("#power-message");
  try {
    const tx = await api("/api/v1/web/dao/delegation", { method: "POST", body: { account: wallet.account } });
    await sendShown(tx, $("#delegate-tx"), box, "Delegated");
  } catch (err) {
    sayError(box, err);
  }
}

async function main() {
  mountWallet();
  $("#propose-form").addEventListener("submit", propose);
  wallet.onChange(() => load().catch((err) => sayError("#wallet-message", err)));
  await load().catch((err) => sayError("#proposals", err));
  document.body.dataset.ready = "true";
}

main();
