/* gridmap command-center map: vector tiles from /tiles, profiles from /api/v1.
 *
 * Hooks for other modules (window.gridmap):
 *   gridmap.refreshLayer(name)        reload a layer's tiles (after data changed)
 *   gridmap.onLiveEvent(fn)           fn(event) for every event of the live feed
 *   gridmap.startEventFeed(url)       open the SSE feed (default /api/v1/events/stream);
 *                                     each message puts the event on the map at once (the
 *                                     "live-events" GeoJSON source), then the events and
 *                                     grids layers are refreshed from their tiles
 *   gridmap.liveEvents                the events the feed brought, by id
 *   gridmap.ready                     true once the first tiles are drawn
 */
(function () {
  "use strict";
  const GRID_FILL = "grids-fill";
  const MAJOR_COLORS = {"01": "#1f77b4", "02": "#ff7f0e", "03": "#2ca02c",
                        "04": "#17becf", "05": "#9467bd", "06": "#7f7f7f"};
  const EVENT_LAYERS = "events-";
  const LIGHT_COLOR = ["match", ["coalesce", ["get", "traffic_light"], "none"],
    "green", "#1a9850", "yellow", "#fdae61", "red", "#d7191c", "#6b7280"];
  /* The "events by status" switch: one map layer per status group, each toggled alone. */
  const EVENT_STATUS_GROUPS = {
    reported: {label: "事件·待立案 reported", statuses: ["reported"]},
    handling: {label: "事件·处置中 in handling", statuses: ["accepted", "dispatched", "in_progress"]},
    resolved: {label: "事件·待核查 resolved", statuses: ["resolved", "verified"]},
    suspended: {label: "事件·挂起 suspended", statuses: ["suspended"]},
  };
  const CLOSED = new Set(["closed", "rejected"]);
  const liveHandlers = [];
  const gridmap = (window.gridmap = {ready: false, map: null, config: null, liveEvents: {},
                                     stats: null, lookup: null});

  function tileUrl(name) {
    return `${location.origin}/tiles/${name}/{z}/{x}/{y}.mvt`;
  }

  function baseStyle(config) {
    const style = {version: 8, sources: {}, layers: [
      {id: "background", type: "background", paint: {"background-color": "#eef0f2"}}]};
    if (config.basemap_url) {
      style.sources.basemap = {type: "raster", tiles: [config.basemap_url], tileSize: 256};
      style.layers.push({id: "basemap", type: "raster", source: "basemap"});
    }
    return style;
  }

  function addSources(map, config) {
    for (const layer of config.layers) {
      map.addSource(layer.name, {type: "vector", tiles: [tileUrl(layer.name)],
        minzoom: layer.minzoom, maxzoom: Math.max(layer.minzoom, 16)});
    }
    map.addSource("live-events", {type: "geojson", data: liveCollection()});
  }

  function liveCollection() {
    return {type: "FeatureCollection", features: Object.values(gridmap.liveEvents).map((e) => ({
      type: "Feature", id: e.id, geometry: {type: "Point", coordinates: [e.lon, e.lat]},
      properties: {id: e.id, category: e.category, status: e.status, priority: e.priority,
                   traffic_light: e.traffic_light ?? null}}))};
  }

  /* Map layers, each with the switcher entry it belongs to. */
  function styleLayers(config) {
    const out = [
      {group: "grids", id: GRID_FILL, type: "fill", source: "grids", "source-layer": "grids",
       paint: {"fill-color": ["interpolate", ["linear"], ["get", "open_events"],
                              0, "#a6d96a", 1, "#fdae61", 5, "#d7191c"],
               "fill-opacity": 0.45}},
      {group: "grids", id: "grids-line", type: "line", source: "grids", "source-layer": "grids",
       paint: {"line-color": "#4d7c0f", "line-width": 0.6}},
      {group: "communities", id: "communities-line", type: "line", source: "communities",
       "source-layer": "communities", paint: {"line-color": "#555", "line-width": 1}},
      {group: "streets", id: "streets-line", type: "line", source: "streets",
       "source-layer": "streets", paint: {"line-color": "#333", "line-width": 1.5}},
      {group: "districts", id: "districts-fill", type: "fill", source: "districts",
       "source-layer": "districts", maxzoom: 12,
       paint: {"fill-color": "#cbd5e1", "fill-opacity": 0.35}},
      {group: "districts", id: "districts-line", type: "line", source: "districts",
       "source-layer": "districts", paint: {"line-color": "#111", "line-width": 2.5}},
      {group: "buildings", id: "buildings-fill", type: "fill", source: "buildings",
       "source-layer": "buildings", paint: {"fill-color": "#b08968", "fill-opacity": 0.8}},
    ];
    for (const [group, {label, statuses}] of Object.entries(EVENT_STATUS_GROUPS)) {
      const filter = ["in", ["get", "status"], ["literal", statuses]];
      out.push({group: `events-${group}`, label, id: `${EVENT_LAYERS}${group}`, type: "circle",
        source: "events", "source-layer": "events", filter,
        paint: {"circle-radius": 6, "circle-color": LIGHT_COLOR,
                "circle-stroke-color": "#fff", "circle-stroke-width": 1.5}});
      // Live events (from the feed, before their tile arrives), switched with their group.
      out.push({group: `events-${group}`, id: `live-${group}`, type: "circle",
        source: "live-events", filter,
        paint: {"circle-radius": 7, "circle-color": LIGHT_COLOR,
                "circle-stroke-color": "#111", "circle-stroke-width": 2}});
    }
    for (const [major, name] of Object.entries(config.facility_classes)) {
      out.push({group: `facilities-${major}`, label: `部件 ${major} ${name}`,
        id: `facilities-${major}`, type: "circle", source: "facilities",
        "source-layer": "facilities", filter: ["==", ["get", "major_code"], major],
        paint: {"circle-radius": 3.5, "circle-color": MAJOR_COLORS[major] || "#000",
                "circle-stroke-color": "#fff", "circle-stroke-width": 0.8}});
    }
    return out;
  }

  function buildSwitcher(map, layers) {
    const box = document.getElementById("layers");
    const groups = new Map();
    for (const layer of layers) {
      if (!groups.has(layer.group)) groups.set(layer.group, {label: layer.label, ids: []});
      groups.get(layer.group).ids.push(layer.id);
    }
    for (const [group, {label, ids}] of groups) {
      const input = Object.assign(document.createElement("input"),
        {type: "checkbox", checked: true, value: group, id: `toggle-${group}`});
      input.addEventListener("change", () => ids.forEach((id) =>
        map.setLayoutProperty(id, "visibility", input.checked ? "visible" : "none")));
      const el = document.createElement("label");
      el.append(input, " ", label || group);
      box.append(el);
    }
  }

  function escapeHtml(value) {
    return String(value ?? "").replace(/[&<>"']/g, (c) =>
      ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"})[c]);
  }

  async function showProfile(code) {
    const panel = document.getElementById("panel");
    const body = document.getElementById("panel-body");
    panel.hidden = false;
    body.textContent = "…";
    const resp = await fetch(`/api/v1/grids/${encodeURIComponent(code)}/profile`);
    if (!resp.ok) { body.textContent = `profile unavailable (${resp.status})`; return; }
    const p = await resp.json();
    const rows = (obj) => Object.entries(obj).map(([k, v]) =>
      `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(v)}</td></tr>`).join("");
    body.innerHTML = `<h3 id="panel-title">${escapeHtml(p.grid.name)}</h3>
      <div id="panel-code">${escapeHtml(p.grid.code)}</div>
      <div>${p.ancestors.map((a) => escapeHtml(a.name)).join(" › ")}</div>
      <table>${rows({"人口 persons": p.persons, "户 households": p.households,
                     "房屋 buildings": p.buildings})}</table>
      <h4>关爱 care</h4><table>${rows(p.care)}</table>
      <h4>部件 facilities</h4><table>${rows(p.facilities_by_class)}</table>
      <h4>网格员 workers</h4><table>${p.workers.map((w) =>
        `<tr><td>${escapeHtml(w.name)}</td><td>${escapeHtml(w.role)}</td>
         <td>${w.on_duty ? "在岗" : "—"}</td></tr>`).join("")}</table>
      <h4>未结事件 open events</h4><div id="panel-events">…</div>`;
    showGridEvents(code);
  }

  /* The grid's open events with their deadlines (masked public view of /api/v1/events). */
  async function showGridEvents(code) {
    const box = document.getElementById("panel-events");
    const resp = await fetch(`/api/v1/events?area=${encodeURIComponent(code)}&limit=500`);
    if (!box) return;
    if (!resp.ok) { box.textContent = `events unavailable (${resp.status})`; return; }
    const open = (await resp.json()).filter((e) => !CLOSED.has(e.status));
    if (!open.length) { box.textContent = "无 none"; return; }
    box.innerHTML = `<table id="panel-events-table"><tr><th>#</th><th>类别</th><th>状态</th>
      <th>期限 deadline</th></tr>${open.map((e) =>
        `<tr class="light-${escapeHtml(e.traffic_light || "none")}" data-id="${e.id}">
         <td>${e.id}</td><td title="${escapeHtml(e.category)}">${escapeHtml(e.category.split(".").pop())}</td><td>${escapeHtml(e.status)}</td>
         <td>${e.deadline ? escapeHtml(e.deadline.slice(0, 16).replace("T", " ")) : "—"}</td>
         </tr>`).join("")}</table>`;
  }

  /* Click anywhere: which grid is this point in (GET /api/v1/lookup). */
  async function showLookup(lngLat) {
    const box = document.getElementById("lookup");
    box.hidden = false;
    const q = `lon=${lngLat.lng.toFixed(7)}&lat=${lngLat.lat.toFixed(7)}`;
    const resp = await fetch(`/api/v1/lookup?${q}`);
    if (!resp.ok) { box.textContent = `lookup failed (${resp.status})`; return; }
    const answer = await resp.json();
    gridmap.lookup = answer;
    const chain = ["district", "street", "community"].map((l) => answer.ancestors?.[l]?.name)
      .filter(Boolean).map(escapeHtml).join(" › ");
    const worker = (answer.workers || [])[0];
    box.innerHTML = answer.grid
      ? `<b>网格 grid</b> <span id="lookup-code">${escapeHtml(answer.grid.code)}</span>
         ${escapeHtml(answer.grid.name)}<br>${chain}
         ${worker ? `<br>网格员 ${escapeHtml(worker.name)}${worker.on_duty ? " (在岗)" : ""}` : ""}`
      : `<span id="lookup-code">—</span> 不在任何网格内 outside every grid`;
  }

  function wireSearch(map) {
    const form = document.getElementById("search");
    const list = document.getElementById("search-results");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const q = document.getElementById("search-q").value.trim();
      list.innerHTML = "";
      if (!q) return;
      const resp = await fetch(`/api/v1/areas?q=${encodeURIComponent(q)}&limit=20`);
      if (!resp.ok) { list.innerHTML = `<li>no result (${resp.status})</li>`; return; }
      for (const hit of await resp.json()) {
        const li = document.createElement("li");
        li.textContent = `${hit.name} · ${hit.code}`;
        li.addEventListener("click", () => {
          map.fitBounds([[hit.bbox[0], hit.bbox[1]], [hit.bbox[2], hit.bbox[3]]],
                        {padding: 40, duration: 0});
          if (hit.level === "grid") showProfile(hit.code);
          if (hit.level === "district" || hit.level === "street") {
            selectedArea = {level: hit.level, code: hit.code, name: hit.name};
            statsKey = null;
            updateStats(map);
          }
        });
        list.append(li);
      }
    });
  }

  /* Statistics of the area in view: the street (zoomed in) or district covering the view
     centre, or the area the user selected; figures from /api/v1/stats. */
  let statsKey = null;
  let selectedArea = null;

  async function areaInView(map) {
    if (selectedArea) return selectedArea;
    const c = map.getCenter();
    const resp = await fetch(`/api/v1/lookup?lon=${c.lng.toFixed(6)}&lat=${c.lat.toFixed(6)}`);
    if (!resp.ok) return null;
    const answer = await resp.json();
    const level = map.getZoom() >= 12 ? "street" : "district";
    const area = answer.ancestors?.[level] || answer.ancestors?.district;
    return area ? {level: area.code.length >= 9 ? "street" : "district", ...area} : null;
  }

  function percent(value) {
    return value === null || value === undefined ? "—" : `${(value * 100).toFixed(1)}%`;
  }

  async function updateStats(map) {
    const grids = map.getLayer(GRID_FILL) ? map.queryRenderedFeatures({layers: [GRID_FILL]}) : [];
    // A grid comes back once per tile it is drawn in: count each code once.
    const perGrid = new Map(grids.map((f) => [f.properties.code, f.properties.open_events || 0]));
    const codes = perGrid;
    const open = [...perGrid.values()].reduce((n, v) => n + v, 0);
    const view = `zoom ${map.getZoom().toFixed(1)} · 网格 grids ${codes.size} · ` +
      `未结事件 open events ${open}`;
    const area = await areaInView(map);
    const box = document.getElementById("stats-body");
    if (!area) { box.textContent = view; return; }
    const to = new Date(Date.now() + 86400e3);
    const from = new Date(Date.now() - 365 * 86400e3);
    const key = `${area.code}|${to.toISOString().slice(0, 13)}|${gridmap.statsVersion || 0}`;
    if (key !== statsKey) {
      statsKey = key;
      const q = `from=${from.toISOString()}&to=${to.toISOString()}&level=${area.level}` +
        `&code=${area.code}`;
      const resp = await fetch(`/api/v1/stats?${q.replaceAll("+", "%2B")}`);
      gridmap.stats = resp.ok ? {...(await resp.json()).total, area} : null;
    }
    const t = gridmap.stats;
    box.innerHTML = `<div>${escapeHtml(view)}</div>` + (t ? `
      <div id="stats-area">${escapeHtml(area.name)} <small>${escapeHtml(area.code)}</small>
        <small>· 近一年 last 12 months</small></div>
      <table id="stats-table">
        <tr><td>上报 reported</td><td id="stat-reported">${t.reported}</td></tr>
        <tr><td>结案率 closure rate</td><td id="stat-closure">${percent(t.closure_rate)}</td></tr>
        <tr><td>按期结案率 on-time rate</td>
            <td id="stat-ontime">${percent(t.on_time_closure_rate)}</td></tr>
        <tr><td>超期 overdue now</td><td id="stat-overdue">${t.overdue_now}</td></tr>
      </table>` : "<div>statistics unavailable</div>");
  }

  let refreshTimer = null;
  /* After a live event: refresh the event and grid tiles (debounced) and the statistics.
   * Not before the tile servers' snapshot of the layer versions has expired
   * (config.tile_version_ttl_ms): until then they may still answer with the tile built
   * before the event, and nothing would ask again. */
  function refreshEventLayers() {
    clearTimeout(refreshTimer);
    const ttl = (gridmap.config && gridmap.config.tile_version_ttl_ms) || 0;
    refreshTimer = setTimeout(() => {
      gridmap.statsVersion = (gridmap.statsVersion || 0) + 1;
      gridmap.refreshLayer("events");
      gridmap.refreshLayer("grids");
    }, Math.max(300, ttl + 200));
  }

  function onFeedMessage(event) {
    if (!event || typeof event !== "object" || event.id === undefined) return;
    if (CLOSED.has(event.status)) delete gridmap.liveEvents[event.id];
    else if (event.lon !== null && event.lon !== undefined) gridmap.liveEvents[event.id] = event;
    const source = gridmap.map && gridmap.map.getSource("live-events");
    if (source) source.setData(liveCollection());
    refreshEventLayers();
  }

  gridmap.refreshLayer = function (name) {
    const source = gridmap.map && gridmap.map.getSource(name);
    if (source) source.setTiles([`${tileUrl(name)}?v=${Date.now()}`]);
  };
  gridmap.onLiveEvent = function (fn) { liveHandlers.push(fn); };
  gridmap.startEventFeed = function (url = "/api/v1/events/stream", kinds = ["message"]) {
    const feed = new EventSource(url);
    const handle = (msg) => {
      let event = msg.data;
      try { event = JSON.parse(msg.data); } catch (_) { /* plain text */ }
      onFeedMessage(event);
      liveHandlers.forEach((fn) => fn(event));
    };
    // The feed names its messages after the action (event: accept …), see config.event_kinds.
    new Set(["message", ...kinds]).forEach((kind) => feed.addEventListener(kind, handle));
    gridmap.feed = feed;
    return feed;
  };

  async function start() {
    const configResp = await fetch("/map/config.json");
    if (configResp.status === 401) {  // no session yet: the login page comes back here
      window.location.assign("/login");
      return;
    }
    const config = await configResp.json();
    gridmap.config = config;
    const [w, s, e, n] = config.bounds;
    const map = new maplibregl.Map({container: "map", style: baseStyle(config),
      bounds: [[w, s], [e, n]], maxZoom: 20, attributionControl: false});
    gridmap.map = map;
    map.addControl(new maplibregl.NavigationControl(), "bottom-right");
    map.on("load", () => {
      addSources(map, config);
      const layers = styleLayers(config);
      layers.forEach(({group, label, ...layer}) => map.addLayer(layer));
      buildSwitcher(map, layers);
      map.on("click", GRID_FILL, (ev) => showProfile(ev.features[0].properties.code));
      map.on("click", (ev) => showLookup(ev.lngLat));
      for (const group of Object.keys(EVENT_STATUS_GROUPS)) {
        map.on("mouseenter", `${EVENT_LAYERS}${group}`, () => {
          map.getCanvas().style.cursor = "pointer"; });
      }
      map.on("mouseenter", GRID_FILL, () => { map.getCanvas().style.cursor = "pointer"; });
      map.on("mouseleave", GRID_FILL, () => { map.getCanvas().style.cursor = ""; });
      map.on("moveend", () => { selectedArea = null; });
      map.on("idle", () => updateStats(map));
      map.once("idle", () => { updateStats(map); gridmap.ready = true; });
      if (config.events_stream) {
        gridmap.startEventFeed(config.events_stream, config.event_kinds || []);
      }
    });
    document.getElementById("panel-close").addEventListener("click", () => {
      document.getElementById("panel").hidden = true;
    });
    wireSearch(map);
  }

  start();
})();
