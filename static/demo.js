// The demo CRM page: drive the simulated call and show the widget's postMessage events.
(function () {
  "use strict";
  const widgetOrigin = document.body.dataset.widgetOrigin;
  let ucid = null;

  function show(call) {
    ucid = call.ucid;
    document.getElementById("call-ucid").textContent = call.ucid;
    document.getElementById("call-state").textContent = call.state;
    document.getElementById("call-disposition").textContent = call.disposition || "none";
  }

  async function post(path, body) {
    const options = { method: "POST" };
    if (body) {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  document.addEventListener("DOMContentLoaded", () => {
    ucid = document.getElementById("call-ucid").textContent;
    document.getElementById("hangup").addEventListener("click", async () => {
      show(await post("/demo/calls/" + ucid + "/hangup"));
    });
    document.getElementById("expire").addEventListener("click", async () => {
      show(await post("/demo/calls/" + ucid + "/expire-wrapup"));
    });
    document.getElementById("new-call").addEventListener("click", async () => {
      const call = await post("/demo/calls", { did: document.getElementById("line").value });
      show(call);
      document.getElementById("widget").src = call.launch;
    });
  });

  window.addEventListener("message", async (event) => {
    // Trust only the widget's origin, and only our message type.
    if (event.origin !== widgetOrigin) return;
    const data = event.data;
    if (!data || data.type !== "cloudagent-disposition") return;
    const item = document.createElement("li");
    item.textContent = JSON.stringify(data);
    document.getElementById("events").prepend(item);
    if (ucid) show(await (await fetch("/demo/calls/" + ucid)).json());
  });
})();
