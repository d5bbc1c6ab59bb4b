// Per-CAC page: while a command is pending, reload every 2 s to show its answer.
(function () {
  "use strict";
  if (document.querySelector("#command-list .status.pending")) {
    setTimeout(function () {
      var active = document.activeElement;
      if (active && /INPUT|TEXTAREA|SELECT/.test(active.tagName)) { return; }
      window.location.reload();
    }, 2000);
  }
})();
