/* Operator console: live station grid over server-sent events, and print buttons.
   Everything works without this file: forms post and redirect; the grid then
   shows the state of when the page was loaded. */
(function () {
  "use strict";
  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (t && t.closest && t.closest("[data-print]")) { window.print(); }
  });
  var grid = document.getElementById("grid");
  var live = document.getElementById("live");
  if (!grid || !window.EventSource) { return; }
  function setLive(on) {
    document.body.dataset.live = on ? "on" : "off";
    if (live) { live.textContent = on ? live.dataset.on : live.dataset.off; }
  }
  function update(st) {
    var card = document.getElementById("st-" + st.id);
    if (!card) { return; }
    card.dataset.state = st.state;
    card.dataset.kind = st.kind;
    card.dataset.run = st.run;
    card.dataset.online = st.online ? "yes" : "no";
    card.querySelectorAll("[data-f]").forEach(function (el) {
      var v = st[el.dataset.f];
      if (v === undefined) { return; }
      if (el.tagName === "INPUT") { el.value = v; } else { el.textContent = v; }
    });
  }
  var es = new EventSource(grid.dataset.events);
  es.addEventListener("stations", function (ev) {
    setLive(true);
    JSON.parse(ev.data).forEach(update);
  });
  es.addEventListener("logout", function () { es.close(); window.location.reload(); });
  es.onerror = function () { setLive(es.readyState === EventSource.OPEN); };
}());
