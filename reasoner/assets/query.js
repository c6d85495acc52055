// The query page: YASGUI (served from this package) against this server's /sparql only.
// No request leaves this server: the editor's autocompleters that call outside services (LOV
// for classes and properties) are off, prefixes come from this endpoint, nothing is kept in
// the browser's storage.
"use strict";
(function () {
  const base = new URL(".", window.location.href);
  const endpoint = new URL("sparql", base).toString();
  const tokenInput = document.getElementById("token");
  const named = document.getElementById("named");

  function auth() {
    return tokenInput.value ? {"Authorization": "Bearer " + tokenInput.value} : {};
  }

  async function getJson(path) {
    const response = await fetch(new URL(path, base), {headers: {"Accept": "application/json", ...auth()}});
    if (!response.ok) { throw new Error(path + ": " + response.status); }
    return response.json();
  }

  let projectPrefixes = {};
  const Yasqe = Yasgui.Yasqe;
  Yasqe.forkAutocompleter("prefixes", {
    name: "project-prefixes",
    persistenceId: null,
    get: () => Promise.resolve(Object.keys(projectPrefixes).sort()
      .map((prefix) => prefix + ": <" + projectPrefixes[prefix] + ">")),
  }, false);
  Yasqe.defaults.autocompleters = ["project-prefixes", "variables"];

  const yasgui = new Yasgui(document.getElementById("yasgui"), {
    requestConfig: {endpoint: endpoint, method: "POST", headers: () => auth()},
    copyEndpointOnNewTab: false,
    persistenceId: null,
    populateFromUrl: false,
    endpointCatalogueOptions: {getData: () => [{endpoint: endpoint}]},
    yasqe: {prefixCcApi: null},
  });
  window.guidelineKgYasgui = yasgui;

  function declarations() {
    return Object.keys(projectPrefixes).sort()
      .map((prefix) => "PREFIX " + prefix + ": <" + projectPrefixes[prefix] + ">").join("\n");
  }

  async function start() {
    try {
      projectPrefixes = (await getJson("prefixes")).prefixes || {};
    } catch (error) { /* the prefixes are a convenience */ }
    const given = new URLSearchParams(window.location.search).get("query");
    const tab = yasgui.getTab();
    // what the editor completes with, for anyone checking that nothing calls outside services
    document.getElementById("yasgui").dataset.autocompleters = tab.getYasqe().config.autocompleters.join(" ");
    if (given) {
      tab.setQuery(given);
      tab.query();
    } else if (!tab.getQuery() || tab.getQuery().indexOf("?sub ?pred ?obj") >= 0) {
      tab.setQuery(declarations() + "\n\nSELECT ?graph (COUNT(*) AS ?triples)\nWHERE { GRAPH ?graph { ?s ?p ?o } }\n"
                   + "GROUP BY ?graph\nORDER BY ?graph\n");
    }
    try {
      const listed = await getJson("queries");
      for (const q of listed.queries) {
        const option = document.createElement("option");
        option.value = q.name;
        option.textContent = q.name + (q.summary ? " \u2014 " + q.summary.slice(0, 80) : "");
        named.appendChild(option);
      }
    } catch (error) { /* the list is a convenience */ }
  }

  named.addEventListener("change", async () => {
    if (!named.value) { return; }
    const response = await fetch(new URL("queries/" + named.value.split("/").map(encodeURIComponent).join("/"), base),
                                 {headers: {"Accept": "application/sparql-query", ...auth()}});
    if (response.ok) { yasgui.getTab().setQuery(await response.text()); }
  });

  start();
}());
