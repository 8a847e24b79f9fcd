// The demo CRM page: frame the widget with its embed.js, drive the simulated call, and show
// the widget's events (the call's end comes to the widget from CloudAgent, not from here).
(function () {
  "use strict";
  const body = document.body;
  let ucid = null;
  let panel = null;

  function show(call) {
    ucid = call.ucid;
    document.getElementById("call-ucid").textContent = call.ucid;
    document.getElementById("call-state").textContent = call.state;
    document.getElementById("call-disposition").textContent = call.disposition || "none";
  }

  async function post(path, data) {
    const options = { method: "POST" };
    if (data) {
      options.headers = { "Content-Type": "application/json" };
      options.body = JSON.stringify(data);
    }
    const response = await fetch(path, options);
    if (!response.ok) throw new Error(path + ": HTTP " + response.status);
    return response.json();
  }

  function logEvent(data) {
    const item = document.createElement("li");
    item.textContent = JSON.stringify(data);
    document.getElementById("events").prepend(item);
  }

  document.addEventListener("DOMContentLoaded", () => {
    ucid = document.getElementById("call-ucid").textContent;
    panel = window.CloudAgentDisposition.mount("#widget-slot", {
      src: body.dataset.launch,
      onReady: logEvent,
      onResize: (data) => {
        document.getElementById("frame-height").textContent = data.height + " px";
      },
      onOutcome: async (data) => {
        logEvent(data);
        if (ucid) show(await (await fetch("/demo/calls/" + ucid)).json());
      },
      onError: (data) => logEvent({ event: "error", ...data }),
      // What CloudAgent itself said (its events reach the widget, not this page).
      onCallEnded: logEvent,
      onConfirmed: logEvent,
    });
    document.getElementById("hangup").addEventListener("click", async () => {
      const call = await post("/demo/calls/" + ucid + "/hangup");
      // Nothing to tell the widget: CloudAgent's Disconnect reaches it (the simulator posts
      // it to the widget's receivers) and starts its wrap-up clock.
      show(call);
    });
    document.getElementById("expire").addEventListener("click", async () => {
      show(await post("/demo/calls/" + ucid + "/expire-wrapup"));
      panel.callEnded(0);
    });
    const look = () => ({
      theme: document.getElementById("dark").checked ? "dark" : "auto",
      lang: document.getElementById("lang").value,
    });
    document.getElementById("new-call").addEventListener("click", async () => {
      const call = await post("/demo/calls", { did: document.getElementById("line").value, ...look() });
      show(call);
      panel.open(call.launch);
    });
    // The CRM knows the agent's language and signs it into the launch link: re-open the panel.
    document.getElementById("lang").addEventListener("change", async () => {
      const query = new URLSearchParams(look());
      const call = await (await fetch("/demo/calls/" + ucid + "?" + query)).json();
      show(call);
      panel.open(call.launch);
    });
  });
})();
