// Fleet table: live refresh from /dashboard/fleet.json, filter, sort, group by region.
// No libraries, no network beyond this hub. Every word shown goes through t() (i18n.js).
(function () {
  "use strict";
  var t = window.cacT || function (m) { return m; };
  var UPLINK = { "internet up": t("internet up"), "internet down": t("internet down"),
                 "hub link only": t("hub link only") };
  var REFRESH_MS = 5000;
  var table = document.getElementById("fleet");
  if (!table) { return; }
  var tbody = table.tBodies[0];
  var state = { rows: null, key: "cac_id", dir: 1 };
  var $ = function (id) { return document.getElementById(id); };

  function esc(v) {
    return String(v).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function num(v, d) { return v === null || v === undefined ? "–" : Number(v).toFixed(d || 0); }
  function duration(s) {
    s = Math.max(0, Math.round(s));
    if (s < 90) { return t("{n} s", { n: s }); }
    if (s < 5400) { return t("{n} min", { n: Math.round(s / 60) }); }
    if (s < 172800) { return t("{n} h", { n: Math.round(s / 3600) }); }
    return t("{n} d", { n: Math.round(s / 86400) });
  }
  function ago(ts, now) {
    if (ts === null || ts === undefined) { return t("never"); }
    return t("{time} ago", { time: duration(now - ts) });
  }
  function rowHtml(r, now) {
    var st = r.stations_online + "/" + r.stations_total +
      (r.stations_locked ? " " + t("({n} locked)", { n: r.stations_locked }) : "");
    return '<tr data-id="' + esc(r.cac_id) + '" class="' + (r.online ? "on" : "off") + '">' +
      '<td><a href="/cacs/' + esc(r.cac_id) + '">' + esc(r.cac_id) + "</a></td>" +
      "<td>" + esc(r.region) + '</td><td class="state">' + (r.online ? t("online") : t("offline")) +
      "</td><td>" + ago(r.last_seen, now) + "</td><td>" + num(r.cpu) + "</td><td>" + num(r.mem) +
      "</td><td>" + num(r.disk) + "</td><td>" + num(r.temp) + "</td><td>" + esc(r.version || "–") +
      "</td><td>" + (r.backlog === null ? "–" : r.backlog) + "</td><td>" +
      (r.content_age_h === null ? "–" : t("{n} h", { n: num(r.content_age_h, 1) })) + "</td><td>" + st +
      "</td><td>" + r.sessions_today + '</td><td class="uplink' +
      (r.uplink === "internet down" ? " bad" : "") + '" title="' +
      esc(r.uplink ? UPLINK[r.uplink] || r.uplink : "") + '">' +
      esc(r.uplink ? UPLINK[r.uplink] || r.uplink : "–") +
      (r.uplink_outage_s ? " " + esc(t("(last outage {time})", { time: duration(r.uplink_outage_s) })) : "") +
      '</td><td class="alarms">' + (r.alarms || "") + "</td></tr>";
  }
  function keep(r) {
    var text = $("f-text").value.trim().toLowerCase();
    var which = $("f-state").value;
    var region = $("f-region").value;
    if (text && (r.cac_id + " " + r.region + " " + (r.version || "")).toLowerCase().indexOf(text) < 0) { return false; }
    if (which === "online" && !r.online) { return false; }
    if (which === "offline" && r.online) { return false; }
    if (which === "alarms" && !r.alarms) { return false; }
    if (region && r.region !== region) { return false; }
    return true;
  }
  function cmp(a, b) {
    var x = a[state.key], y = b[state.key];
    if (x === y) { return a.cac_id < b.cac_id ? -1 : 1; }
    if (x === null || x === undefined) { return 1; }
    if (y === null || y === undefined) { return -1; }
    return (x < y ? -1 : 1) * state.dir;
  }
  function render(now) {
    if (!state.rows) { return; }
    var rows = state.rows.filter(keep).sort(cmp);
    var html = [];
    if ($("f-group").checked) {
      var groups = {};
      rows.forEach(function (r) { (groups[r.region] = groups[r.region] || []).push(r); });
      Object.keys(groups).sort().forEach(function (g) {
        var on = groups[g].filter(function (r) { return r.online; }).length;
        html.push('<tr class="group"><th colspan="15">' + esc(g) + " · " +
                  esc(t("{on}/{total} online", { on: on, total: groups[g].length })) +
                  "</th></tr>");
        groups[g].forEach(function (r) { html.push(rowHtml(r, now)); });
      });
    } else {
      rows.forEach(function (r) { html.push(rowHtml(r, now)); });
    }
    tbody.innerHTML = html.join("");
    $("updated").textContent = t("{n} shown · updated {time} UTC",
      { n: rows.length, time: new Date(now * 1000).toISOString().slice(11, 19) });
  }
  function load() {
    fetch("/dashboard/fleet.json", { credentials: "same-origin", cache: "no-store" })
      .then(function (resp) { if (!resp.ok) { throw new Error(resp.status); } return resp.json(); })
      .then(function (data) {
        state.rows = data.cacs;
        var on = data.cacs.filter(function (r) { return r.online; }).length;
        $("summary").textContent = t("{on} of {total} online", { on: on, total: data.cacs.length });
        render(data.at);
        table.setAttribute("data-loaded", "1");
      })
      .catch(function () { $("updated").textContent = t("update failed; retrying"); });
  }
  table.tHead.addEventListener("click", function (ev) {
    var key = ev.target.getAttribute("data-key");
    if (!key) { return; }
    state.dir = state.key === key ? -state.dir : 1;
    state.key = key;
    render(Date.now() / 1000);
  });
  ["f-text", "f-state", "f-region", "f-group"].forEach(function (id) {
    $(id).addEventListener("input", function () { render(Date.now() / 1000); });
    $(id).addEventListener("change", function () { render(Date.now() / 1000); });
  });
  $("filters").addEventListener("submit", function (ev) { ev.preventDefault(); });
  $("regions").addEventListener("click", function (ev) {
    var b = ev.target.closest("[data-region]");
    if (!b) { return; }
    $("f-region").value = $("f-region").value === b.dataset.region ? "" : b.dataset.region;
    render(Date.now() / 1000);
  });
  load();
  setInterval(load, REFRESH_MS);
})();
