// Greenroom Avatar: a SillyTavern extension that shows one live Greenroom talkinghead per character.
//
// It uses only SillyTavern's public API, SillyTavern.getContext(), and only members that exist in both
// 1.12.x and today's releases; newer APIs (SlashCommand objects) are detected with a fallback. Nothing is
// imported from SillyTavern's own files: their paths moved between releases.
//
// Server side it drives Greenroom's /api/talkinghead/* with an instance per character (instance_id derived
// from the character's avatar file), /api/classify for emotions and /api/talkinghead/speak for lip-synced
// speech. Licence: AGPL-3.0-or-later, like the talkinghead module it drives.

const NAME = 'greenroom';
const DEFAULTS = Object.freeze({
    enabled: true,
    url: 'http://127.0.0.1:5100',
    apiKey: '',
    emotionSource: 'greenroom',
    skipActions: true,
    quotesOnly: false,
    holder: { left: null, top: null, width: 360, height: 300 },
    characters: {},
});
const CHARACTER_DEFAULTS = Object.freeze({ speak: false, voice: '', voice2: '', mix: 0.5, speed: 1.0, image: '', example: '', animator: {} });
const FEED_FORMATS = ['PNG', 'WEBP'];  // what an <img> shows; QOI and TGA are for Python clients
const POSE_HINTS = ['look_at_camera', 'look_left', 'look_right', 'stand_straight', 'new_sway'];
const RECONNECT_MS = 3000;
// A server that lost an instance (restarted, or a worker behind a load balancer died) answers 404 naming it;
// the avatar is then created again, after these delays. More tries than that within the window: give up.
const RECREATE_DELAYS_MS = [1000, 2000, 4000];
const RECREATE_WINDOW_MS = 60_000;
const WATCH_MS = 5000;  // how often a visible tab asks whether the server still has its instances
const BLANK = 'data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7';

/** Everything this page knows about the server and the avatars on it. */
const state = {
    connection: 'idle',       // idle | connecting | ok | error
    modules: [],
    voices: [],
    examples: [],
    animatorSchema: null,     // AnimatorSettings' JSON schema properties
    filters: [],              // the postprocessor filter catalogue
    avatars: new Map(),       // character avatar file -> Avatar
    queue: Promise.resolve(), // avatar syncs run one at a time
    retryTimer: null,
    speech: null,             // { avatar, audio, utteranceId, url }
    speechSeq: 0,
    streamingAvatar: null,
    draftedAvatar: null,
    editing: null,            // avatar file of the character shown in the settings panel
};

class GreenroomError extends Error {
    /** @param {'down'|'key'|'module'|'request'} kind */
    constructor(kind, message, status = 0, instanceId = null) {
        super(message);
        this.kind = kind;
        this.status = status;
        this.instanceId = instanceId;  // the instance a 404 names
    }
}

// -- SillyTavern's side ----------------------------------------------------------------------------------

function st() {
    return SillyTavern.getContext();
}

function settings() {
    const all = st().extensionSettings;
    all[NAME] = { ...structuredClone(DEFAULTS), ...(all[NAME] ?? {}) };
    return all[NAME];
}

function characterSettings(avatarFile) {
    const s = settings();
    s.characters[avatarFile] = { ...structuredClone(CHARACTER_DEFAULTS), ...(s.characters[avatarFile] ?? {}) };
    return s.characters[avatarFile];
}

function save() {
    st().saveSettingsDebounced();
}

/** The characters of the open chat that get an avatar: the character, or a group's active members. */
function chatCharacters() {
    const c = st();
    if (c.groupId) {
        const group = c.groups.find(g => String(g.id) === String(c.groupId));
        if (!group) return [];
        const disabled = group.disabled_members ?? [];
        return group.members.filter(m => !disabled.includes(m))
            .map(m => c.characters.find(ch => ch.avatar === m)).filter(Boolean);
    }
    const ch = c.characterId !== undefined && c.characterId !== null ? c.characters[c.characterId] : null;
    return ch ? [ch] : [];
}

/** The character who wrote a chat message (groups mark it with original_avatar / force_avatar). */
function characterOfMessage(message) {
    const members = chatCharacters();
    if (st().groupId) {
        return members.find(ch => ch.avatar === message.original_avatar)
            ?? members.find(ch => message.force_avatar?.includes(encodeURIComponent(ch.avatar)))
            ?? members.find(ch => ch.name === message.name) ?? null;
    }
    return members[0] ?? null;
}

/** The sprite folder, as the Expressions extension names it (its per-character override included). */
function spriteFolder(ch) {
    const base = ch.avatar.replace(/\.[^/.]+$/, '');
    const override = (st().extensionSettings.expressionOverrides ?? []).find(e => e.name === base);
    return override?.path || ch.name;
}

async function executeSlash(text) {
    const c = st();
    const run = c.executeSlashCommandsWithOptions
        ? c.executeSlashCommandsWithOptions(text, { handleParserErrors: false, handleExecutionErrors: false })
        : c.executeSlashCommands(text);
    return (await run)?.pipe ?? '';
}

// -- Greenroom's side -------------------------------------------------------------------------------------

function baseUrl() {
    return settings().url.trim().replace(/\/+$/, '');
}

function authHeaders() {
    const key = settings().apiKey.trim();
    return key ? { Authorization: `Bearer ${key}` } : {};
}

/** One API call; failures become GreenroomErrors that say what to do. */
async function api(path, { method = 'GET', json = undefined, form = undefined, keepalive = false } = {}) {
    const headers = authHeaders();
    // A load balancer routes by this header (it never reads bodies): deploy/README.md
    const instanceId = json?.instance_id ?? (form instanceof FormData ? form.get('instance_id') : null);
    if (instanceId) headers['X-Instance-Id'] = instanceId;
    let body;
    if (json !== undefined) {
        headers['Content-Type'] = 'application/json';
        body = JSON.stringify(json);
    } else if (form !== undefined) {
        body = form;
    }
    let response;
    try {
        response = await fetch(baseUrl() + path, { method: json || form ? 'POST' : method, headers, body, keepalive });
    } catch {
        const error = new GreenroomError('down', `Greenroom is not reachable at ${baseUrl()}. Is it running? Retrying...`);
        if (!keepalive) onConnectionLost(error);
        throw error;
    }
    const isJson = (response.headers.get('Content-Type') ?? '').includes('json');
    const data = isJson ? await response.json() : await response.text();
    if (response.ok) return data;
    const said = typeof data === 'object' && data?.error ? data.error : String(data).slice(0, 200);
    if (response.status === 401) {
        throw new GreenroomError('key', `Greenroom refused the API key (401). Copy the key the server printed at start-up (--secure) into "API key".`, 401);
    }
    const lost = response.status === 404 && typeof data === 'object' ? data?.instance_id ?? null : null;
    if (lost && !keepalive) instanceLost(lost);
    throw new GreenroomError('request', `${path}: ${said}`, response.status, lost);
}

/** The feed's URL; ``t`` makes each start a new request (an <img> may reuse a finished stream's last frame).
 * WebP: lossless like PNG, and about half of PNG's encoding CPU on the server (two avatars on two cores). */
function feedUrl(avatar) {
    return `${baseUrl()}/api/talkinghead/result_feed?instance_id=${encodeURIComponent(avatar.id)}&format=webp&t=${Date.now()}`;
}

/** A stable instance id from the character's avatar file: readable prefix + hash ([A-Za-z0-9_-]{1,64}). */
function instanceIdFor(avatarFile) {
    let hash = 0x811c9dc5;
    for (const ch of avatarFile) {
        hash ^= ch.codePointAt(0);
        hash = Math.imul(hash, 0x01000193) >>> 0;
    }
    const slug = avatarFile.replace(/\.[^/.]+$/, '').replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 40);
    return `st-${slug}-${hash.toString(16).padStart(8, '0')}`;
}

// -- connection -------------------------------------------------------------------------------------------

function setStatus(connection, message) {
    state.connection = connection;
    const el = document.getElementById('greenroom_status');
    if (el) {
        el.textContent = message;
        el.dataset.state = connection;
    }
    const dot = document.getElementById('greenroom_status_dot');
    if (dot) {
        dot.dataset.state = connection;
        dot.title = message;
    }
}

/** Check the server, its key and its modules; then (re)load every avatar of the chat. */
async function connect() {
    stopReconnecting();
    if (!settings().enabled) {
        setStatus('idle', 'Avatars are switched off.');
        return false;
    }
    setStatus('connecting', `Connecting to ${baseUrl()}...`);
    try {
        const health = await api('/health');
        await api('/api/modules');  // the one call that tells a wrong key (/health needs none)
        state.modules = Object.entries(health.modules ?? {}).filter(([, s]) => s === 'loaded').map(([name]) => name);
        if (!state.modules.includes('talkinghead')) {
            throw new GreenroomError('module', 'Greenroom runs without the talkinghead module. Start it with --enable-modules=talkinghead,classify,tts.');
        }
        await loadCatalogues();
    } catch (error) {
        setStatus('error', error.message);
        if (error.kind === 'down') scheduleReconnect();
        return false;
    }
    const missing = ['classify', 'tts'].filter(m => !state.modules.includes(m));
    const note = missing.length ? ` Without ${missing.join(' and ')}: ${missing.includes('classify') ? 'no automatic emotions' : ''}${missing.length === 2 ? ', ' : ''}${missing.includes('tts') ? 'no speech' : ''}.` : '';
    setStatus('ok', `Connected to ${baseUrl()}.${note}`);
    // A restarted server has lost our instances: forget them here and load them again.
    for (const avatar of state.avatars.values()) avatar.el.remove();
    state.avatars.clear();
    await syncAvatars();
    renderCharacterPanel();
    return true;
}

async function loadCatalogues() {
    const [schema, filters, examples, voices] = await Promise.all([
        api('/api/modules/talkinghead/schema'),
        api('/api/talkinghead/filters'),
        api('/api/talkinghead/characters'),
        state.modules.includes('tts') ? api('/api/tts/voices').catch(() => null) : null,
    ]);
    state.animatorSchema = schema.schema?.$defs?.AnimatorSettings?.properties ?? {};
    state.filters = filters.filters ?? [];
    state.examples = examples.characters ?? [];
    state.voices = voices ? voiceNames(voices) : [];
}

function voiceNames(reply) {
    const names = (reply.voices ?? []).map(v => (typeof v === 'string' ? v : v.name ?? v.id)).filter(Boolean);
    const aliases = Object.keys(reply.aliases ?? {});
    return [...new Set([...aliases, ...names])];
}

function onConnectionLost(error) {
    if (state.connection === 'error' && state.retryTimer) return;
    setStatus('error', error.message);
    scheduleReconnect();
}

function scheduleReconnect() {
    if (state.retryTimer || !settings().enabled) return;
    state.retryTimer = setInterval(async () => {
        try {
            await fetch(`${baseUrl()}/health`);
        } catch {
            return;  // still down
        }
        stopReconnecting();
        await connect();
    }, RECONNECT_MS);
}

function stopReconnecting() {
    clearInterval(state.retryTimer);
    state.retryTimer = null;
}

// -- avatars ----------------------------------------------------------------------------------------------

/** Run ``job`` after every earlier avatar job (chat switches must not interleave loads and unloads). */
function enqueue(job) {
    state.queue = state.queue.then(job).catch(error => reportError(error));
    return state.queue;
}

function syncAvatars() {
    return enqueue(syncNow);
}

async function syncNow() {
    const wanted = settings().enabled && state.connection === 'ok' ? chatCharacters() : [];
    const keys = new Set(wanted.map(ch => ch.avatar));
    for (const avatar of [...state.avatars.values()]) {
        if (!keys.has(avatar.key) || avatar.el.dataset.state === 'lost') await unloadAvatar(avatar);  // lost: load afresh
    }
    try {
        for (const ch of wanted) {
            if (!state.avatars.has(ch.avatar)) await loadAvatar(ch);
        }
    } finally {
        layoutHolder();
    }
}

async function loadAvatar(ch) {
    const avatar = { key: ch.avatar, id: instanceIdFor(ch.avatar), name: ch.name, folder: spriteFolder(ch), el: null, img: null,
        recreating: false, tries: [] };
    avatar.el = avatarElement(avatar);
    state.avatars.set(avatar.key, avatar);
    await createInstance(avatar, ch);
}

/** The avatar's instance on the server, from the sprite folder and this character's settings (first load or
 * re-creation: the same picture, _emotions.json and animator settings each time). */
async function createInstance(avatar, ch) {
    const picture = await pictureFor(ch, avatar.folder);
    const form = new FormData();
    form.append('instance_id', avatar.id);
    if (picture.file) form.append('file', picture.file, 'talkinghead.png');
    else form.append('character', picture.character);
    avatar.picture = picture.source;
    await api('/api/talkinghead/load', { form });
    const emotions = await spriteJson(avatar.folder, '_emotions.json');
    if (emotions) {
        await api(`/api/talkinghead/load_emotion_templates?instance_id=${avatar.id}`, { json: emotions })
            .catch(error => toast('warning', `${ch.name}: _emotions.json not applied: ${error.message}`));
    }
    const emotion = avatar.el.dataset.emotion;  // set before the server lost the instance
    if (emotion) await api('/api/talkinghead/set_emotion', { json: { emotion_name: emotion, instance_id: avatar.id } }).catch(() => {});
    showFeed(avatar);
    await applyAnimatorSettings(avatar).catch(error => reportError(error));  // the feed runs on defaults
}

/** talkinghead.png from the sprite folder, else the user's picked picture, else an example character. */
async function pictureFor(ch, folder) {
    const sprite = await fetch(`/characters/${encodeURIComponent(folder)}/talkinghead.png`, { cache: 'no-cache' }).catch(() => null);
    if (sprite?.ok && (sprite.headers.get('Content-Type') ?? '').startsWith('image/')) {
        return { file: await sprite.blob(), source: `talkinghead.png in characters/${folder}/` };
    }
    const cs = characterSettings(ch.avatar);
    if (cs.image) {
        return { file: await (await fetch(cs.image)).blob(), source: 'the picture you picked' };
    }
    const example = cs.example || state.examples[0];
    return { character: example, source: `the example character ${example}` };
}

async function spriteJson(folder, file) {
    const response = await fetch(`/characters/${encodeURIComponent(folder)}/${file}`, { cache: 'no-cache' }).catch(() => null);
    if (!response?.ok) return null;
    try {
        return await response.json();
    } catch {
        toast('warning', `characters/${folder}/${file} is not valid JSON; ignored.`);
        return null;
    }
}

/** The sprite folder's _animator.json overlaid with this character's settings from the panel. */
async function applyAnimatorSettings(avatar) {
    const fromFolder = await spriteJson(avatar.folder, '_animator.json') ?? {};
    const ours = characterSettings(avatar.key).animator;
    const reply = await api(`/api/talkinghead/load_animator_settings?instance_id=${avatar.id}`, { json: { ...fromFolder, ...ours } });
    const notes = typeof reply === 'string' && reply.startsWith('OK; ') ? reply.slice(4) : '';
    const dropped = notes.split('; ').filter(note => note.includes('dropped') || note.includes('ignored'));
    if (dropped.length && notes !== avatar.settingsNote) toast('warning', `${avatar.name}: ${dropped.join('; ')}`);
    avatar.settingsNote = notes;
    avatar.el.title = notes ? `Settings: ${notes}` : '';
    if (state.editing === avatar.key) setNote(notes ? `Server: ${notes}` : 'Settings applied.');
    return reply;
}

async function unloadAvatar(avatar) {
    state.avatars.delete(avatar.key);
    if (state.speech?.avatar === avatar) await stopSpeech();
    avatar.img.src = BLANK;
    avatar.el.remove();
    await api('/api/talkinghead/unload', { json: { instance_id: avatar.id } }).catch(error => {
        if (error.kind === 'request' && error.status !== 404) throw error;  // gone or unreachable: nothing to do
    });
}

async function unloadAll() {
    for (const avatar of [...state.avatars.values()]) await unloadAvatar(avatar);
    layoutHolder();
}

/** Closing or reloading the page (SillyTavern reloads to disable an extension) deletes our instances. */
function unloadOnExit() {
    for (const avatar of state.avatars.values()) {
        api('/api/talkinghead/unload', { json: { instance_id: avatar.id }, keepalive: true }).catch(() => {});
    }
}

function showFeed(avatar) {
    if (!document.hidden && state.avatars.get(avatar.key) === avatar) avatar.img.src = feedUrl(avatar);
}

// -- lost instances ---------------------------------------------------------------------------------------

/** A 404 named ``instanceId``: if it is one of our avatars, create it again (once at a time). */
function instanceLost(instanceId) {
    const avatar = [...state.avatars.values()].find(a => a.id === instanceId);
    if (!avatar || avatar.recreating || avatar.el.dataset.state === 'lost') return;
    avatar.recreating = true;
    setAvatarState(avatar, 'recreating', `${avatar.name}: the server no longer has this avatar; creating it again...`);
    recreate(avatar).finally(() => { avatar.recreating = false; });
}

/** Load the avatar again under the same id, with back-off; after too many tries, give up and say so. */
async function recreate(avatar) {
    let failure = null;
    for (;;) {
        const now = Date.now();
        avatar.tries = avatar.tries.filter(t => now - t < RECREATE_WINDOW_MS);
        if (avatar.tries.length >= RECREATE_DELAYS_MS.length) break;
        await new Promise(resolve => setTimeout(resolve, RECREATE_DELAYS_MS[avatar.tries.length]));
        avatar.tries.push(Date.now());
        failure = null;
        await enqueue(async () => {  // after any chat switch in progress
            const ch = st().characters.find(c => c.avatar === avatar.key);
            if (state.avatars.get(avatar.key) !== avatar || state.connection !== 'ok' || !ch) return;
            try {
                await createInstance(avatar, ch);
            } catch (error) {
                failure = error;
            }
        });
        if (!failure) {
            if (document.hidden) await api('/api/talkinghead/stop', { json: { instance_id: avatar.id } }).catch(() => {});
            return;  // re-created (its feed marks it live), or no longer wanted
        }
        if (failure.kind === 'down' || failure.kind === 'key') return;  // the status line and reconnect take over
    }
    const why = failure ? failure.message : 'the server lost it again after each re-creation';
    const message = `${avatar.name}: the avatar could not be created again (${why}; ${avatar.tries.length} tries within a minute). Press Connect to try again.`;
    setAvatarState(avatar, 'lost', message);
    setStatus(state.connection, message);
    toast('error', message);
}

function setAvatarState(avatar, avatarState, message = '') {
    avatar.el.dataset.state = avatarState;
    avatar.el.title = message || (avatar.settingsNote ? `Settings: ${avatar.settingsNote}` : '');
    avatar.el.querySelector('figcaption').textContent = avatarState === 'live' ? avatar.name
        : `${avatar.name} (${avatarState === 'lost' ? 'lost' : 're-creating...'})`;
}

/** Ask whether the server still has the avatar: a 404 starts its re-creation (see api). */
function checkAvatar(avatar) {
    if (avatar.recreating || avatar.el.dataset.state === 'lost') return Promise.resolve();
    return api(`/api/talkinghead/status?instance_id=${encodeURIComponent(avatar.id)}`).catch(() => {});
}

/** A feed that ends cleanly fires no event on its <img>: a visible tab asks now and then instead. */
async function watchAvatars() {
    if (state.connection !== 'ok' || document.hidden) return;
    for (const avatar of [...state.avatars.values()]) await checkAvatar(avatar);
}

/** A hidden tab closes its feeds and pauses its instances: an idle tab costs the server nothing. */
async function onVisibilityChange() {
    for (const avatar of state.avatars.values()) {
        if (document.hidden) {
            avatar.img.src = BLANK;
            await api('/api/talkinghead/stop', { json: { instance_id: avatar.id } }).catch(() => {});
        } else {
            await api('/api/talkinghead/start', { json: { instance_id: avatar.id } }).catch(() => {});
            showFeed(avatar);
        }
    }
}

// -- the holder -------------------------------------------------------------------------------------------

function holder() {
    let el = document.getElementById('greenroom_holder');
    if (el) return el;
    el = document.createElement('div');
    el.id = 'greenroom_holder';
    el.className = 'greenroom-holder';
    el.innerHTML = '<div class="greenroom-holder-header" title="Drag to move; resize from the corner"><span class="fa-solid fa-grip"></span> Greenroom</div><div class="greenroom-avatars"></div>';
    document.body.append(el);
    const { left, top, width, height } = settings().holder;
    Object.assign(el.style, { width: `${width}px`, height: `${height}px` });
    if (left !== null && top !== null) Object.assign(el.style, { left: `${left}px`, top: `${top}px`, right: 'auto' });
    makeDraggable(el, el.firstElementChild);
    new ResizeObserver(() => rememberHolder(el)).observe(el);
    return el;
}

function avatarElement(avatar) {
    const figure = document.createElement('figure');
    figure.className = 'greenroom-avatar';
    figure.dataset.instanceId = avatar.id;
    figure.dataset.character = avatar.name;
    const img = document.createElement('img');
    img.className = 'greenroom-feed';
    img.alt = avatar.name;
    img.addEventListener('error', () => {
        if (img.src !== BLANK && state.connection === 'ok') checkServer().then(() => state.connection === 'ok' && checkAvatar(avatar));
    });
    img.addEventListener('load', () => {
        if (img.src !== BLANK && avatar.el.dataset.state !== 'live') setAvatarState(avatar, 'live');
    });
    const caption = document.createElement('figcaption');
    caption.textContent = avatar.name;
    figure.append(img, caption);
    holder().querySelector('.greenroom-avatars').append(figure);
    avatar.img = img;
    return figure;
}

function layoutHolder() {
    const el = holder();
    el.style.display = state.avatars.size ? '' : 'none';
    el.dataset.count = String(state.avatars.size);
}

function markSpeaking(avatar) {
    for (const other of state.avatars.values()) other.el.classList.toggle('greenroom-speaking', other === avatar);
}

function makeDraggable(el, handle) {
    handle.addEventListener('pointerdown', down => {
        down.preventDefault();
        const start = el.getBoundingClientRect();
        const move = event => {
            const left = Math.min(Math.max(0, start.left + event.clientX - down.clientX), window.innerWidth - 40);
            const top = Math.min(Math.max(0, start.top + event.clientY - down.clientY), window.innerHeight - 40);
            Object.assign(el.style, { left: `${left}px`, top: `${top}px`, right: 'auto' });
        };
        const up = () => {
            window.removeEventListener('pointermove', move);
            window.removeEventListener('pointerup', up);
            rememberHolder(el);
        };
        window.addEventListener('pointermove', move);
        window.addEventListener('pointerup', up);
    });
}

function rememberHolder(el) {
    if (el.style.display === 'none') return;
    const box = el.getBoundingClientRect();
    const custom = el.style.left !== '';
    settings().holder = { left: custom ? Math.round(box.left) : null, top: custom ? Math.round(box.top) : null, width: Math.round(box.width), height: Math.round(box.height) };
    save();
}

async function checkServer() {
    try {
        await fetch(`${baseUrl()}/health`);
    } catch {
        onConnectionLost(new GreenroomError('down', `Greenroom stopped answering at ${baseUrl()}. Retrying...`));
    }
}

// -- messages: emotion, speech, talking -------------------------------------------------------------------

async function onCharacterMessage(messageId) {
    const message = st().chat[Number(messageId)];
    await stopTalking();
    if (!message || message.is_user || message.is_system || state.connection !== 'ok') return;
    const ch = characterOfMessage(message);
    const avatar = ch && state.avatars.get(ch.avatar);
    if (!avatar) return;
    await stopSpeech();
    markSpeaking(avatar);
    try {
        const emotion = await emotionOf(message, ch);
        if (emotion) {
            await api('/api/talkinghead/set_emotion', { json: { emotion_name: emotion, instance_id: avatar.id } });
            avatar.el.dataset.emotion = emotion;
        }
        const cs = characterSettings(ch.avatar);
        const text = speechText(message.mes ?? '');
        if (cs.speak && text && state.modules.includes('tts')) await speak(avatar, text, cs);
    } catch (error) {
        reportError(error);
    }
}

/** The emotion label: Greenroom's classifier, or the Expressions extension's last label for the character. */
async function emotionOf(message, ch) {
    if (settings().emotionSource === 'expressions') {
        const label = await expressionsLabel(ch);
        if (label) return label;
    }
    if (!state.modules.includes('classify')) return null;
    const text = plainText(message.mes ?? '').slice(0, 4000);
    if (!text) return null;
    const reply = await api('/api/classify', { json: { text } });
    return reply.classification?.[0]?.label ?? null;
}

/** /lastsprite (a slash command of the Expressions extension, in every release): the label it set last.
 * Expressions classifies on its own timer, so wait a few seconds for the label to change. */
async function expressionsLabel(ch) {
    const command = `/lastsprite ${JSON.stringify(spriteFolder(ch).split('/')[0])}`;
    let label = '';
    try {
        const before = await executeSlash(command);
        label = before;
        for (let i = 0; i < 10 && label === before; i++) {
            await new Promise(resolve => setTimeout(resolve, 500));
            label = await executeSlash(command);
        }
    } catch {
        return null;  // Expressions is not installed or not enabled
    }
    return typeof label === 'string' ? label.trim() : '';
}

function plainText(mes) {
    return mes.replace(/<[^>]*>/g, ' ').replace(/[*_~`#]/g, '').replace(/\s+/g, ' ').trim();
}

/** What to say: without *actions* and only "quoted" speech, as the settings ask. */
function speechText(mes) {
    const s = settings();
    let text = mes.replace(/<[^>]*>/g, ' ');
    if (s.skipActions) text = text.replace(/\*[^*]*\*/g, ' ');
    if (s.quotesOnly) {
        text = [...text.matchAll(/"([^"]+)"|\u201c([^\u201d]+)\u201d|\u00ab([^\u00bb]+)\u00bb/g)]
            .map(m => m[1] ?? m[2] ?? m[3]).join(' ');
    }
    return plainText(text);
}

async function speak(avatar, text, cs) {
    const seq = ++state.speechSeq;
    const body = { text, speed: Number(cs.speed) || 1, instance_id: avatar.id, format: 'wav' };
    if (cs.voice) body.voice = cs.voice;
    if (cs.voice2) Object.assign(body, { voice2: cs.voice2, mix: Number(cs.mix) });
    const reply = await api('/api/talkinghead/speak', { json: body });
    if (seq !== state.speechSeq || state.avatars.get(avatar.key) !== avatar) return;  // superseded meanwhile
    const bytes = Uint8Array.from(atob(reply.audio), c => c.charCodeAt(0));
    const url = URL.createObjectURL(new Blob([bytes], { type: reply.media_type }));
    const audio = new Audio(url);
    audio.className = 'greenroom-audio';
    state.speech = { avatar, audio, utteranceId: reply.utterance_id, url };
    avatar.el.dataset.lipsync = 'pending';
    audio.addEventListener('playing', async () => {
        if (state.speech?.audio !== audio) return;
        const started = await api('/api/talkinghead/speak/start', {
            json: { instance_id: avatar.id, utterance_id: reply.utterance_id, offset: audio.currentTime },
        }).catch(error => reportError(error));
        if (started && state.speech?.audio === audio) {
            avatar.el.dataset.lipsync = started.lipsync?.utterance?.state ?? 'playing';
            avatar.el.classList.add('greenroom-talking');
        }
    }, { once: true });
    audio.addEventListener('ended', () => {
        if (state.speech?.audio === audio) finishSpeech();
    });
    await audio.play();
}

function finishSpeech() {
    const speech = state.speech;
    if (!speech) return;
    state.speech = null;
    speech.audio.pause();
    URL.revokeObjectURL(speech.url);
    speech.avatar.el.classList.remove('greenroom-talking');
    delete speech.avatar.el.dataset.lipsync;
    return speech;
}

/** Stop the audio and the mouth (a new message came, or the user stopped generation). */
async function stopSpeech() {
    state.speechSeq++;
    const speech = finishSpeech();
    if (speech) {
        await api('/api/talkinghead/speak/stop', { json: { instance_id: speech.avatar.id, utterance_id: speech.utteranceId } })
            .catch(() => {});
    }
}

/** While a reply streams in, the writer's mouth moves (the no-audio talking animation). */
async function onStreamToken() {
    if (state.streamingAvatar || state.connection !== 'ok') return;
    const avatar = state.draftedAvatar ?? (st().groupId ? null : [...state.avatars.values()][0]);
    if (!avatar) return;
    state.streamingAvatar = avatar;
    markSpeaking(avatar);
    await api(`/api/talkinghead/start_talking?instance_id=${avatar.id}`, { method: 'POST' }).catch(() => {});
}

async function stopTalking() {
    const avatar = state.streamingAvatar;
    state.streamingAvatar = null;
    state.draftedAvatar = null;
    if (avatar) await api(`/api/talkinghead/stop_talking?instance_id=${avatar.id}`, { method: 'POST' }).catch(() => {});
}

function onMemberDrafted(characterIndex) {
    const ch = st().characters[characterIndex];
    state.draftedAvatar = (ch && state.avatars.get(ch.avatar)) ?? null;
    if (state.draftedAvatar) markSpeaking(state.draftedAvatar);
}

// -- slash commands ---------------------------------------------------------------------------------------

/** The avatar a command means: char=Name, else the last speaker, else the chat's first avatar. */
function commandAvatar(args) {
    const wanted = String(args?.char ?? '').trim().toLowerCase();
    const avatars = [...state.avatars.values()];
    if (wanted) {
        const avatar = avatars.find(a => a.name.toLowerCase() === wanted);
        if (!avatar) throw new Error(`no avatar for '${args.char}' in this chat`);
        return avatar;
    }
    const speaking = avatars.find(a => a.el.classList.contains('greenroom-speaking'));
    if (speaking ?? avatars[0]) return speaking ?? avatars[0];
    throw new Error('no avatar in this chat (is Greenroom connected?)');
}

const COMMANDS = [
    {
        name: 'greenroom-emotion', argument: 'emotion label, e.g. joy',
        help: 'Sets the emotion of a Greenroom avatar. <code>/greenroom-emotion char=Alice joy</code>',
        run: async (args, value) => {
            const avatar = commandAvatar(args);
            await api('/api/talkinghead/set_emotion', { json: { emotion_name: value, instance_id: avatar.id } });
            avatar.el.dataset.emotion = value;
            return value;
        },
    },
    {
        name: 'greenroom-pose', argument: POSE_HINTS.join(' | '), choices: POSE_HINTS,
        help: 'Gives a Greenroom avatar a pose hint for a while. <code>/greenroom-pose char=Alice duration=5 look_left</code>',
        run: async (args, value) => {
            const avatar = commandAvatar(args);
            const duration = Number(args?.duration ?? 5);
            await api('/api/talkinghead/pose_hint', { json: { hint: value, duration, instance_id: avatar.id } });
            return value;
        },
    },
    {
        name: 'greenroom-talk', argument: 'start | stop', choices: ['start', 'stop'],
        help: 'Starts or stops the talking animation of a Greenroom avatar. <code>/greenroom-talk char=Alice start</code>',
        run: async (args, value) => {
            const avatar = commandAvatar(args);
            const action = value === 'stop' ? 'stop' : 'start';
            if (action === 'stop') await stopSpeech();
            await api(`/api/talkinghead/${action}_talking?instance_id=${avatar.id}`, { method: 'POST' });  // query: these read no body
            return action;
        },
    },
];

/** SlashCommand objects where the context offers them (newer releases); registerSlashCommand otherwise. */
function registerCommands() {
    const c = st();
    for (const command of COMMANDS) {
        const callback = async (args, value) => {
            try {
                return await command.run(args, String(value ?? '').trim());
            } catch (error) {
                toast('error', `/${command.name}: ${error.message}`);
                return '';
            }
        };
        if (c.SlashCommandParser?.addCommandObject && c.SlashCommand?.fromProps && c.SlashCommandArgument) {
            const STRING = c.ARGUMENT_TYPE?.STRING ?? 'string';
            c.SlashCommandParser.addCommandObject(c.SlashCommand.fromProps({
                name: command.name,
                callback,
                helpString: command.help,
                returns: 'the value that was set',
                namedArgumentList: [
                    c.SlashCommandNamedArgument.fromProps({ name: 'char', description: 'character name (default: the last speaker)', typeList: [STRING] }),
                    ...(command.name === 'greenroom-pose'
                        ? [c.SlashCommandNamedArgument.fromProps({ name: 'duration', description: 'seconds', typeList: [c.ARGUMENT_TYPE?.NUMBER ?? 'number'] })]
                        : []),
                ],
                unnamedArgumentList: [c.SlashCommandArgument.fromProps({
                    description: command.argument, typeList: [STRING], isRequired: true,
                    ...(command.choices ? { enumList: command.choices } : {}),
                })],
            }));
        } else {
            c.registerSlashCommand(command.name, callback, [], `<span class="monospace">[char=Name] (${command.argument})</span> – ${command.help}`, true, true);
        }
    }
}

// -- the settings panel -----------------------------------------------------------------------------------

async function addSettingsPanel() {
    const html = await (await fetch(new URL('./settings.html', import.meta.url))).text();
    const target = document.getElementById('extensions_settings2') ?? document.getElementById('extensions_settings');
    target.insertAdjacentHTML('beforeend', html);
    const s = settings();
    const $ = id => document.getElementById(id);
    $('greenroom_enabled').checked = s.enabled;
    $('greenroom_url').value = s.url;
    $('greenroom_key').value = s.apiKey;
    $('greenroom_emotion_source').value = s.emotionSource;
    $('greenroom_skip_actions').checked = s.skipActions;
    $('greenroom_quotes_only').checked = s.quotesOnly;

    $('greenroom_enabled').addEventListener('change', async event => {
        settings().enabled = event.target.checked;
        save();
        if (event.target.checked) {
            await connect();
        } else {
            stopReconnecting();
            await stopSpeech();
            await enqueue(unloadAll);
            setStatus('idle', 'Avatars are switched off.');
        }
    });
    $('greenroom_connect').addEventListener('click', async () => {
        const url = $('greenroom_url').value.trim();
        if (url.replace(/\/+$/, '') !== baseUrl()) {
            await enqueue(unloadAll);  // from the old server, before talking to the new one
        }
        Object.assign(settings(), { url, apiKey: $('greenroom_key').value.trim() });
        save();
        await connect();
    });
    bindSetting('greenroom_emotion_source', 'value', v => { settings().emotionSource = v; });
    bindSetting('greenroom_skip_actions', 'checked', v => { settings().skipActions = v; });
    bindSetting('greenroom_quotes_only', 'checked', v => { settings().quotesOnly = v; });

    $('greenroom_character').addEventListener('change', event => {
        state.editing = event.target.value;
        renderCharacterPanel();
    });
    bindCharacter('greenroom_speak', 'checked', 'speak');
    bindCharacter('greenroom_voice', 'value', 'voice');
    bindCharacter('greenroom_voice2', 'value', 'voice2');
    bindCharacter('greenroom_mix', 'value', 'mix', Number);
    bindCharacter('greenroom_speed', 'value', 'speed', Number);
    bindCharacter('greenroom_example', 'value', 'example', String, reloadEditedAvatar);
    $('greenroom_picture').addEventListener('change', async event => {
        const file = event.target.files?.[0];
        if (!file || !state.editing) return;
        characterSettings(state.editing).image = await readDataUrl(file);
        save();
        await reloadEditedAvatar();
    });
    $('greenroom_picture_clear').addEventListener('click', async () => {
        if (!state.editing) return;
        characterSettings(state.editing).image = '';
        save();
        await reloadEditedAvatar();
    });
    $('greenroom_chain_add').addEventListener('click', () => {
        const name = $('greenroom_chain_add_name').value;
        const chain = [...editedChain(), [name, {}]];
        setAnimatorOverride('postprocessor_chain', chain);
        renderChain(chain);
    });
    $('greenroom_reset_character').addEventListener('click', async () => {
        if (!state.editing) return;
        delete settings().characters[state.editing];
        save();
        await reloadEditedAvatar();
        renderCharacterPanel();
    });
}

function bindSetting(id, property, apply) {
    document.getElementById(id).addEventListener('change', event => {
        apply(event.target[property]);
        save();
    });
}

function bindCharacter(id, property, key, convert = x => x, after = null) {
    const el = document.getElementById(id);
    el.addEventListener('input', async () => {
        if (!state.editing) return;
        characterSettings(state.editing)[key] = convert(el[property]);
        showRangeValues();
        save();
        if (after) await after();
    });
}

function readDataUrl(file) {
    return new Promise((resolve, reject) => {
        const reader = new FileReader();
        reader.onload = () => resolve(reader.result);
        reader.onerror = () => reject(reader.error);
        reader.readAsDataURL(file);
    });
}

async function reloadEditedAvatar() {
    const avatar = state.avatars.get(state.editing);
    if (!avatar) return;
    await enqueue(async () => {
        await unloadAvatar(avatar);
        await syncNow();
    });
    renderCharacterPanel();
}

/** The panel for one character of this chat: speech, picture, animator settings and filters. */
async function renderCharacterPanel() {
    const $ = id => document.getElementById(id);
    const select = $('greenroom_character');
    if (!select) return;
    const characters = chatCharacters();
    if (!characters.some(ch => ch.avatar === state.editing)) state.editing = characters[0]?.avatar ?? null;
    select.replaceChildren(...characters.map(ch => new Option(ch.name, ch.avatar, false, ch.avatar === state.editing)));
    $('greenroom_character_panel').hidden = !state.editing;
    if (!state.editing) return;
    const cs = characterSettings(state.editing);
    $('greenroom_speak').checked = cs.speak;
    fillOptions($('greenroom_voice'), ['', ...state.voices], cs.voice, 'server default');
    fillOptions($('greenroom_voice2'), ['', ...state.voices], cs.voice2, 'none');
    $('greenroom_mix').value = cs.mix;
    $('greenroom_speed').value = cs.speed;
    fillOptions($('greenroom_example'), state.examples, cs.example || state.examples[0] || '');
    fillOptions($('greenroom_chain_add_name'), state.filters.map(f => f.name), state.filters[0]?.name);
    showRangeValues();
    const avatar = state.avatars.get(state.editing);
    $('greenroom_picture_source').textContent = avatar?.picture ? `Showing ${avatar.picture}.` : '';
    const effective = avatar && state.connection === 'ok'
        ? await api(`/api/talkinghead/animator_settings?instance_id=${avatar.id}`).catch(() => ({}))
        : {};
    renderAnimatorForm({ ...effective, ...cs.animator });
    renderChain(cs.animator.postprocessor_chain ?? effective.postprocessor_chain ?? []);
    setNote(avatar?.settingsNote ? `Server: ${avatar.settingsNote}` : '');
}

function fillOptions(select, values, selected, emptyLabel = '') {
    select.replaceChildren(...values.map(v => new Option(v === '' ? emptyLabel : v, v, false, v === selected)));
}

function showRangeValues() {
    const $ = id => document.getElementById(id);
    $('greenroom_mix_value').textContent = Number($('greenroom_mix').value).toFixed(2);
    $('greenroom_speed_value').textContent = `${Number($('greenroom_speed').value).toFixed(2)}x`;
}

function setNote(text) {
    const el = document.getElementById('greenroom_settings_note');
    if (el) el.textContent = text;
}

/** One input per animator setting, built from the module's JSON schema (type, range, enum, description). */
function renderAnimatorForm(values) {
    const form = document.getElementById('greenroom_animator');
    const fields = Object.entries(state.animatorSchema ?? {}).filter(([key]) => key !== 'postprocessor_chain');
    form.replaceChildren(...fields.map(([key, spec]) => {
        const value = values[key] ?? spec.default;
        const input = schemaInput(key, spec, value, v => setAnimatorOverride(key, v));
        return labelled(spec.title ?? key, spec.description ?? '', input, `greenroom_animator_${key}`);
    }));
}

function schemaInput(key, spec, value, onChange) {
    const id = `greenroom_animator_${key}`;
    if (spec.type === 'array' && spec.items?.enum) {
        const box = document.createElement('div');
        box.id = id;
        box.className = 'greenroom-checks';
        for (const option of spec.items.enum) {
            const label = document.createElement('label');
            const check = Object.assign(document.createElement('input'), { type: 'checkbox', value: option, checked: (value ?? []).includes(option) });
            check.addEventListener('change', () => onChange([...box.querySelectorAll('input:checked')].map(c => c.value)));
            label.append(check, ` ${option}`);
            box.append(label);
        }
        return box;
    }
    if (spec.enum) {
        const options = key === 'format' ? spec.enum.filter(f => FEED_FORMATS.includes(f)) : spec.enum;
        const select = Object.assign(document.createElement('select'), { id, className: 'text_pole' });
        fillOptions(select, options, value);
        select.addEventListener('change', () => onChange(select.value));
        return select;
    }
    if (spec.type === 'boolean') {
        const check = Object.assign(document.createElement('input'), { id, type: 'checkbox', checked: Boolean(value) });
        check.addEventListener('change', () => onChange(check.checked));
        return check;
    }
    return numberInput(id, spec.type === 'integer' ? 'int' : 'float', spec.minimum ?? spec.exclusiveMinimum, spec.maximum, value, onChange);
}

function numberInput(id, type, min, max, value, onChange) {
    const input = Object.assign(document.createElement('input'), { id, type: 'number', className: 'text_pole', value: value ?? '' });
    if (min !== undefined) input.min = min;
    if (max !== undefined) input.max = max;
    input.step = type === 'int' ? '1' : 'any';
    input.addEventListener('change', () => {
        if (input.value !== '' && input.checkValidity()) onChange(type === 'int' ? parseInt(input.value, 10) : Number(input.value));
    });
    return input;
}

function labelled(title, description, input, id) {
    const row = document.createElement('div');
    row.className = 'greenroom-field';
    const label = Object.assign(document.createElement('label'), { htmlFor: id, textContent: title, title: description });
    row.append(label, input);
    return row;
}

function editedChain() {
    const chain = characterSettings(state.editing).animator.postprocessor_chain;
    if (chain) return structuredClone(chain);
    return [...document.querySelectorAll('#greenroom_chain .greenroom-filter')].map(row => JSON.parse(row.dataset.entry));
}

/** The chain editor: one row per filter with inputs built from the filter catalogue's parameters. */
function renderChain(chain) {
    const box = document.getElementById('greenroom_chain');
    box.replaceChildren(...chain.map(([name, params], index) => {
        const spec = state.filters.find(f => f.name === name);
        const row = document.createElement('div');
        row.className = 'greenroom-filter';
        row.dataset.entry = JSON.stringify([name, params ?? {}]);
        row.dataset.filter = name;
        const head = document.createElement('div');
        head.className = 'greenroom-filter-head';
        head.append(Object.assign(document.createElement('b'), { textContent: name, title: spec?.description ?? '' }),
            chainButton('fa-arrow-up', 'Move up', () => moveFilter(index, -1)),
            chainButton('fa-arrow-down', 'Move down', () => moveFilter(index, 1)),
            chainButton('fa-trash', 'Remove', () => moveFilter(index, 0)));
        row.append(head);
        for (const param of spec?.params ?? []) {
            const value = (params ?? {})[param.name] ?? param.default;
            const input = filterInput(`greenroom_chain_${index}_${param.name}`, param, value, v => setFilterParam(index, param.name, v));
            row.append(labelled(param.name, param.description, input, input.id));
        }
        return row;
    }));
}

function chainButton(icon, title, onClick) {
    const button = Object.assign(document.createElement('div'), { className: `menu_button fa-solid ${icon}`, title });
    button.addEventListener('click', onClick);
    return button;
}

function filterInput(id, param, value, onChange) {
    if (param.type === 'bool') {
        const check = Object.assign(document.createElement('input'), { id, type: 'checkbox', checked: Boolean(value) });
        check.addEventListener('change', () => onChange(check.checked));
        return check;
    }
    if (param.type === 'choice') {
        const select = Object.assign(document.createElement('select'), { id, className: 'text_pole' });
        fillOptions(select, param.choices, value);
        select.addEventListener('change', () => onChange(select.value));
        return select;
    }
    if (param.type === 'color') {
        const toHex = rgb => `#${rgb.map(c => Math.round(c * 255).toString(16).padStart(2, '0')).join('')}`;
        const color = Object.assign(document.createElement('input'), { id, type: 'color', value: toHex(value) });
        color.addEventListener('change', () => onChange([1, 3, 5].map(i => parseInt(color.value.slice(i, i + 2), 16) / 255)));
        return color;
    }
    return numberInput(id, param.type, param.min, param.max, value, onChange);
}

function moveFilter(index, direction) {
    const chain = editedChain();
    const [entry] = chain.splice(index, 1);
    if (direction !== 0) chain.splice(Math.max(0, Math.min(chain.length, index + direction)), 0, entry);
    setAnimatorOverride('postprocessor_chain', chain);
    renderChain(chain);
}

function setFilterParam(index, name, value) {
    const chain = editedChain();
    chain[index][1] = { ...(chain[index][1] ?? {}), [name]: value };
    setAnimatorOverride('postprocessor_chain', chain);
}

let applyTimer = null;

/** Remember one animator setting for the edited character and send the result to its instance. */
function setAnimatorOverride(key, value) {
    if (!state.editing) return;
    const key_ = state.editing;
    characterSettings(key_).animator[key] = value;
    save();
    clearTimeout(applyTimer);
    applyTimer = setTimeout(() => {
        const avatar = state.avatars.get(key_);
        if (avatar) enqueue(() => applyAnimatorSettings(avatar));
    }, 300);
}

// -- errors -----------------------------------------------------------------------------------------------

function toast(kind, message) {
    const toastr = globalThis.toastr;
    if (toastr?.[kind]) toastr[kind](message, 'Greenroom');
    else console[kind === 'error' ? 'error' : 'log'](`Greenroom: ${message}`);
}

function reportError(error) {
    if (!(error instanceof GreenroomError)) {
        console.error('Greenroom:', error);
        toast('error', String(error?.message ?? error));
        return;
    }
    if (error.kind === 'down') return;  // the status line says it and the retry timer runs
    if (error.kind === 'key') setStatus('error', error.message);
    else if (state.editing) setNote(error.message);
    toast('error', error.message);
}

// -- start ------------------------------------------------------------------------------------------------

async function start() {
    const c = st();
    const events = c.eventTypes ?? c.event_types;
    await addSettingsPanel();
    registerCommands();
    c.eventSource.on(events.CHAT_CHANGED, async () => {
        await stopSpeech();
        await stopTalking();
        await syncAvatars();
        renderCharacterPanel();
    });
    // SillyTavern awaits its listeners: these run on their own so a slow server never holds up the chat.
    c.eventSource.on(events.GROUP_UPDATED, () => { syncAvatars(); });
    c.eventSource.on(events.CHARACTER_MESSAGE_RENDERED, id => { onCharacterMessage(id); });
    c.eventSource.on(events.MESSAGE_SENT, () => { stopSpeech(); });
    c.eventSource.on(events.GENERATION_STOPPED, () => { stopSpeech().then(stopTalking); });
    if (events.STREAM_TOKEN_RECEIVED) c.eventSource.on(events.STREAM_TOKEN_RECEIVED, () => { onStreamToken(); });
    if (events.GROUP_MEMBER_DRAFTED) c.eventSource.on(events.GROUP_MEMBER_DRAFTED, id => onMemberDrafted(id));
    document.addEventListener('visibilitychange', onVisibilityChange);
    window.addEventListener('pagehide', unloadOnExit);
    layoutHolder();
    setInterval(watchAvatars, WATCH_MS);
    await connect();
}

start().catch(error => console.error('Greenroom extension failed to start:', error));
