// The browser's words in the page's language: t("English text", {field: value}).
// The page carries the translations as JSON (<script id="i18n-js">, hub/i18n.py js_table);
// a word missing there stays English. Fields are {name} as in the .po catalogues.
(function () {
  "use strict";
  var table = {};
  var el = document.getElementById("i18n-js");
  if (el) {
    try { table = JSON.parse(el.textContent || "{}"); } catch (e) { table = {}; }
  }
  window.cacT = function (msgid, fields) {
    var text = Object.prototype.hasOwnProperty.call(table, msgid) ? table[msgid] : msgid;
    if (!fields) { return text; }
    return text.replace(/\{(\w+)\}/g, function (m, k) {
      return Object.prototype.hasOwnProperty.call(fields, k) ? String(fields[k]) : m;
    });
  };
})();
