// Passkey ceremonies for the sign-in and account pages. Served from our own
// origin under a strict CSP; talks JSON to /login/passkey and /account/passkeys.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const status = document.getElementById("passkey-status");
  const say = (text) => { if (status) status.textContent = text; };

  const toBytes = (b64url) => {
    const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    const bin = atob(b64 + "===".slice((b64.length + 3) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  };
  const toB64url = (buffer) => {
    const bin = String.fromCharCode(...new Uint8Array(buffer));
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  const post = async (url, body) => {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {}),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.detail || "the server refused");
    return data;
  };

  const signInButton = document.getElementById("passkey-sign-in");
  if (signInButton) {
    signInButton.addEventListener("click", async () => {
      try {
        say("Waiting for your passkey…");
        const { handle, options } = await post("/login/passkey/options");
        const pk = options.publicKey;
        pk.challenge = toBytes(pk.challenge);
        (pk.allowCredentials || []).forEach((c) => { c.id = toBytes(c.id); });
        const credential = await navigator.credentials.get({ publicKey: pk, mediation: options.mediation });
        const r = credential.response;
        const result = await post("/login/passkey", {
          handle,
          credential: {
            id: credential.id,
            rawId: toB64url(credential.rawId),
            type: credential.type,
            response: {
              authenticatorData: toB64url(r.authenticatorData),
              clientDataJSON: toB64url(r.clientDataJSON),
              signature: toB64url(r.signature),
              userHandle: r.userHandle ? toB64url(r.userHandle) : null,
            },
            extensions: credential.getClientExtensionResults(),
          },
        });
        window.location.assign(result.redirect || "/account");
      } catch (e) {
        say("Passkey sign-in did not work: " + e.message);
      }
    });
  }

  const registerButton = document.getElementById("passkey-register");
  if (registerButton) {
    registerButton.addEventListener("click", async () => {
      try {
        say("Follow your browser's prompt…");
        const { handle, options } = await post("/account/passkeys/options");
        const pk = options.publicKey;
        pk.challenge = toBytes(pk.challenge);
        pk.user.id = toBytes(pk.user.id);
        (pk.excludeCredentials || []).forEach((c) => { c.id = toBytes(c.id); });
        const credential = await navigator.credentials.create({ publicKey: pk });
        const r = credential.response;
        await post("/account/passkeys", {
          handle,
          name: document.getElementById("passkey-name").value,
          credential: {
            id: credential.id,
            rawId: toB64url(credential.rawId),
            type: credential.type,
            response: {
              attestationObject: toB64url(r.attestationObject),
              clientDataJSON: toB64url(r.clientDataJSON),
              transports: r.getTransports ? r.getTransports() : [],
            },
            extensions: credential.getClientExtensionResults(),
          },
        });
        window.location.reload();
      } catch (e) {
        say("Adding the passkey did not work: " + e.message);
      }
    });
  }
})();
