/* gridmap command-center map: vector tiles from /tiles, profiles from /api/v1.
 *
 * Hooks for other modules (window.gridmap):
 *   gridmap.refreshLayer(name)        reload a layer's tiles (after data changed)
 *   gridmap.onLiveEvent(fn)           fn(event) for every event of the live feed
 *   gridmap.startEventFeed(url)       open the SSE feed (default /api/v1/events/stream);
 *                                     each message refreshes the grids layer (open_events)
 *   gridmap.ready                     true once the first tiles are drawn
 */
(function () {
  "use strict";
  const GRID_FILL = "grids-fill";
  const MAJOR_COLORS = {"01": "#1f77b4", "02": "#ff7f0e", "03": "#2ca02c",
                        "04": "#17becf", "05": "#9467bd", "06": "#7f7f7f"};
  const liveHandlers = [];
  const gridmap = (window.gridmap = {ready: false, map: null, config: null});

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
         <td>${w.on_duty ? "在岗" : "—"}</td></tr>`).join("")}</table>`;
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
        });
        list.append(li);
      }
    });
  }

  /* Placeholder for the statistics of the area in view (the stats module fills it later). */
  function updateStats(map) {
    const grids = map.getLayer(GRID_FILL) ? map.queryRenderedFeatures({layers: [GRID_FILL]}) : [];
    const codes = new Set(grids.map((f) => f.properties.code));
    const open = grids.reduce((n, f) => n + (f.properties.open_events || 0), 0);
    document.getElementById("stats-body").textContent =
      `zoom ${map.getZoom().toFixed(1)} · 网格 grids ${codes.size} · 事件 open events ${open}`;
  }

  gridmap.refreshLayer = function (name) {
    const source = gridmap.map && gridmap.map.getSource(name);
    if (source) source.setTiles([`${tileUrl(name)}?v=${Date.now()}`]);
  };
  gridmap.onLiveEvent = function (fn) { liveHandlers.push(fn); };
  gridmap.startEventFeed = function (url = "/api/v1/events/stream") {
    const feed = new EventSource(url);
    feed.onmessage = (msg) => {
      let event = msg.data;
      try { event = JSON.parse(msg.data); } catch (_) { /* plain text */ }
      liveHandlers.forEach((fn) => fn(event));
      gridmap.refreshLayer("grids");
    };
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
      map.on("mouseenter", GRID_FILL, () => { map.getCanvas().style.cursor = "pointer"; });
      map.on("mouseleave", GRID_FILL, () => { map.getCanvas().style.cursor = ""; });
      map.on("idle", () => updateStats(map));
      map.once("idle", () => { updateStats(map); gridmap.ready = true; });
      if (config.events_stream) gridmap.startEventFeed(config.events_stream);
    });
    document.getElementById("panel-close").addEventListener("click", () => {
      document.getElementById("panel").hidden = true;
    });
    wireSearch(map);
  }

  start();
})();
