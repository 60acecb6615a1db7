// What the panels share: module states and the avatar instance being shown. Panels listen for changes.

export const state = {
  modules: {},          // module name -> "loaded" | "failed" | ... (from /health)
  instanceId: null,     // the talkinghead instance on stage
  events: new EventTarget(),

  loaded(name) { return this.modules[name] === "loaded"; },

  setInstance(id) {
    if (id === this.instanceId) return;
    this.instanceId = id;
    this.emit("instance", {id});
  },

  emit(type, detail = {}) { this.events.dispatchEvent(new CustomEvent(type, {detail})); },
  on(type, fn) { this.events.addEventListener(type, (e) => fn(e.detail)); },
};
