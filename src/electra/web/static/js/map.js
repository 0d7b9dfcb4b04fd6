// The map: Leaflet over an offline Natural Earth basemap (world-atlas TopoJSON drawn as a GeoJSON
// layer, no tile server), the chargers from /api/v1/stations/nearby clustered and coloured by
// their live status, with the API's own filters. The list under the map holds the same results.
/* global L, topojson */
import { $, api, config, el, formatUnits, kw, mountWallet, say, sayError } from "./common.js";

const STATUS_LETTER = { available: "A", occupied: "B", unknown: "?" };
const STATUS_WORD = { available: "available", occupied: "busy", unknown: "not reporting" };
let map;
let clusters;
let radiusCircle = null;
const markers = new Map();
let searchTimer = null;
let moving = false;

function icon(status) {
  return L.divIcon({
    className: `station-marker ${status}`,
    html: `<span aria-hidden="true">${STATUS_LETTER[status] || "?"}</span>`,
    iconSize: [28, 28],
  });
}

function clusterIcon(cluster) {
  const children = cluster.getAllChildMarkers();
  const free = children.filter((m) => m.options.stationStatus === "available").length;
  const size = children.length < 10 ? 36 : children.length < 100 ? 44 : 52;
  return L.divIcon({
    className: `station-cluster${free ? " some-available" : ""}`,
    html: `<span>${children.length}</span><span class="visually-hidden"> chargers, ${free} available</span>`,
    iconSize: [size, size],
  });
}

async function drawBasemap() {
  const res = await fetch("/static/vendor/world-atlas/countries-50m.json");
  const topology = await res.json();
  const countries = topojson.feature(topology, topology.objects.countries);
  L.geoJSON(countries, {
    interactive: false,
    style: { color: "#8c959f", weight: 0.8, fillColor: "#f7f3ea", fillOpacity: 1 },
  }).addTo(map);
  const borders = topojson.mesh(topology, topology.objects.countries, (a, b) => a !== b);
  L.geoJSON(borders, { interactive: false, style: { color: "#6e7781", weight: 1 } }).addTo(map);
}

function connectorNames(mask, cfg) {
  return Object.entries(cfg.connector_bits).filter(([, bit]) => (mask & bit) !== 0).map(([name]) => name);
}

function priceText(item, cfg) {
  const asset = cfg.assets[item.asset];
  if (!asset) return `${item.price_per_wh} base units of ${item.asset} per Wh`;
  return `${formatUnits(String(BigInt(item.price_per_wh) * 1000n), asset.decimals)} ${item.asset}/kWh`;
}

function query() {
  const f = new FormData($("#filters"));
  const p = new URLSearchParams({ lat: f.get("lat").trim(), lon: f.get("lon").trim(), k: "100" });
  if (f.get("connector")) p.set("connector", f.get("connector"));
  if (Number(f.get("min_power_kw")) > 0) p.set("min_power_kw", String(Math.floor(Number(f.get("min_power_kw")))));
  const maxPrice = f.get("max_price");
  if (maxPrice !== "" && maxPrice !== null) {
    // EUSD has 6 decimals: a price per kWh in EUSD is that many thousandths of base units per Wh.
    p.set("max_price_per_wh", String(Math.round(Number(maxPrice) * 1000)));
  }
  if (f.get("available")) p.set("available", "true");
  if (f.get("public")) p.set("public", "true");
  if (f.get("radius_km")) p.set("radius_km", f.get("radius_km"));
  return p;
}

function popupFor(item, cfg) {
  return el(
    "div",
    {},
    el("strong", {}, item.charger_id),
    el("br"),
    `${STATUS_WORD[item.availability] || item.availability} · ${kw(item.max_power_w)} · ${priceText(item, cfg)}`,
    el("br"),
    el("a", { href: `/driver?charger=${encodeURIComponent(item.charger_id)}` }, `Charge at ${item.charger_id}`),
  );
}

function resultItem(item, cfg) {
  const status = item.availability;
  return el(
    "li",
    { id: `result-${item.charger_id}`, "data-charger": item.charger_id },
    el("strong", {}, `${item.rank}. ${item.charger_id}`),
    " ",
    el("span", { class: `status ${status}` }, STATUS_WORD[status] || status),
    el(
      "div",
      {},
      `${(item.distance_m / 1000).toFixed(1)} km · ${kw(item.max_power_w)} · ${connectorNames(item.connector_types, cfg).join(", ")} · `,
      `${priceText(item, cfg)} · ${item.public ? "public" : "private"}`,
    ),
    el(
      "ul",
      { class: "why", "aria-label": `Why ${item.charger_id} ranks here: ${item.why}` },
      Object.entries(item.points).map(([what, points]) => el("li", {}, `${what}: ${points} of 1000 points`)),
    ),
    el(
      "div",
      { class: "actions" },
      el("a", { class: "button", href: `/driver?charger=${encodeURIComponent(item.charger_id)}` }, `Charge at ${item.charger_id}`),
      el(
        "button",
        {
          type: "button",
          class: "secondary",
          onclick: () => {
            const m = markers.get(item.charger_id);
            if (!m) return;
            clusters.zoomToShowLayer(m, () => m.openPopup());
          },
        },
        `Show ${item.charger_id} on the map`,
      ),
    ),
  );
}

async function search() {
  const cfg = await config();
  const params = query();
  history.replaceState(null, "", `/?${params}`);
  let answer;
  try {
    answer = await api(`/api/v1/stations/nearby?${params}`);
  } catch (err) {
    sayError("#search-message", err);
    return;
  }
  clusters.clearLayers();
  markers.clear();
  for (const item of answer.items) {
    const m = L.marker([item.latitude, item.longitude], {
      icon: icon(item.availability),
      title: `${item.charger_id}: ${STATUS_WORD[item.availability] || item.availability}`,
      alt: item.charger_id,
      keyboard: true,
      stationStatus: item.availability,
    });
    m.bindPopup(() => popupFor(item, cfg));
    markers.set(item.charger_id, m);
    clusters.addLayer(m);
  }
  if (radiusCircle) radiusCircle.remove();
  radiusCircle = null;
  if (params.get("radius_km")) {
    radiusCircle = L.circle([Number(params.get("lat")), Number(params.get("lon"))], {
      radius: Number(params.get("radius_km")) * 1000,
      color: "#0a55b8",
      weight: 1,
      fillOpacity: 0.05,
      interactive: false,
    }).addTo(map);
  }
  $("#results").replaceChildren(...answer.items.map((i) => resultItem(i, cfg)));
  $("#result-count").textContent = `(${answer.count})`;
  say("#search-message", answer.count ? `${answer.count} chargers found.` : "No charger matches these filters.", "info");
  document.body.dataset.searched = String(Number(document.body.dataset.searched || 0) + 1);
}

function fromUrl() {
  const p = new URLSearchParams(location.search);
  const form = $("#filters");
  for (const [k, v] of p) {
    const input = form.elements.namedItem(k === "max_price_per_wh" ? "max_price" : k);
    if (!input) continue;
    if (input.type === "checkbox") input.checked = v === "true";
    else input.value = k === "max_price_per_wh" ? String(Number(v) / 1000) : v;
  }
}

async function main() {
  mountWallet();
  const cfg = await config().catch((err) => {
    sayError("#search-message", err);
    return null;
  });
  if (!cfg) return;
  const select = $("#connector");
  for (const c of cfg.connectors) select.append(el("option", { value: c }, c));
  fromUrl();
  const lat = Number($("#lat").value);
  const lon = Number($("#lon").value);
  map = L.map("map", { preferCanvas: true, worldCopyJump: true, minZoom: 2, maxZoom: 18 }).setView([lat, lon], 11);
  map.attributionControl.addAttribution("Basemap: Natural Earth (world-atlas), offline");
  clusters = L.markerClusterGroup({ iconCreateFunction: clusterIcon, showCoverageOnHover: false, maxClusterRadius: 45 });
  map.addLayer(clusters);
  await drawBasemap();
  map.on("moveend", () => {
    if (moving) return;
    const c = map.getCenter().wrap();
    $("#lat").value = c.lat.toFixed(5);
    $("#lon").value = c.lng.toFixed(5);
    clearTimeout(searchTimer);
    searchTimer = setTimeout(search, 400);
  });
  $("#filters").addEventListener("submit", (ev) => {
    ev.preventDefault();
    moving = true;
    map.setView([Number($("#lat").value), Number($("#lon").value)], map.getZoom(), { animate: false });
    moving = false;
    search();
  });
  await search();
  document.body.dataset.ready = "true";
}

main();
