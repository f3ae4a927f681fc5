// Passkey ceremonies for Public Services Sign-in (WebAuthn Level 3 §5.1.3 create, §5.1.4 get).
// No dependencies and no inline script (CSP script-src 'self'). Each ceremony button carries:
//   data-passkey="create" | "get", data-options-url, data-verify-url, data-csrf-token,
//   data-error (id of the element that shows errors), and optionally data-interaction,
//   data-next and data-name-field (id of the input naming a new passkey).
// The server answers {"options": ...} and then {"redirect": url}, or {"error", "message"}.
(function () {
  "use strict";

  function toBuffer(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) {
      bytes[i] = binary.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) {
      binary += String.fromCharCode(bytes[i]);
    }
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return Object.assign({}, item, { id: toBuffer(item.id) });
    });
  }

  // PublicKeyCredentialCreationOptionsJSON / RequestOptionsJSON (§5.1.9, §5.1.10) to the binary forms.
  function creationOptions(json) {
    return Object.assign({}, json, {
      challenge: toBuffer(json.challenge),
      user: Object.assign({}, json.user, { id: toBuffer(json.user.id) }),
      excludeCredentials: descriptors(json.excludeCredentials)
    });
  }

  function requestOptions(json) {
    return Object.assign({}, json, {
      challenge: toBuffer(json.challenge),
      allowCredentials: descriptors(json.allowCredentials)
    });
  }

  // PublicKeyCredential to RegistrationResponseJSON / AuthenticationResponseJSON (§5.1.8).
  function credentialJson(credential) {
    var r = credential.response;
    var response = { clientDataJSON: toBase64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toBase64url(r.attestationObject);
      response.transports = typeof r.getTransports === "function" ? r.getTransports() : [];
    } else {
      response.authenticatorData = toBase64url(r.authenticatorData);
      response.signature = toBase64url(r.signature);
      response.userHandle = r.userHandle ? toBase64url(r.userHandle) : null;
    }
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: response,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults()
    };
  }

  function post(url, body, token) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRF-Token": token },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (json) {
        if (!response.ok) {
          throw new Error(json.message || "Something went wrong. Try again.");
        }
        return json;
      });
    });
  }

  // The browser's own errors (§6.3.2, §6.3.3), in plain English.
  function explain(error) {
    if (error && error.name === "NotAllowedError") {
      return "The passkey request was cancelled or timed out. Try again.";
    }
    if (error && error.name === "InvalidStateError") {
      return "This device already has a passkey for your account.";
    }
    if (error && error.name === "SecurityError") {
      return "Passkeys cannot be used on this web address.";
    }
    return (error && error.message) || "Something went wrong. Try again.";
  }

  function ceremony(button, options) {
    if (button.dataset.passkey === "create") {
      return navigator.credentials.create({ publicKey: creationOptions(options) });
    }
    return navigator.credentials.get({ publicKey: requestOptions(options) });
  }

  function verifyBody(button, credential) {
    var body = { credential: credentialJson(credential) };
    var nameField = button.dataset.nameField && document.getElementById(button.dataset.nameField);
    if (nameField) { body.name = nameField.value; }
    if (button.dataset.interaction) { body.interaction = button.dataset.interaction; }
    if (button.dataset.next) { body.next = button.dataset.next; }
    return body;
  }

  function run(button) {
    var token = button.dataset.csrfToken;
    var errorBox = document.getElementById(button.dataset.error);
    errorBox.hidden = true;
    button.disabled = true;
    post(button.dataset.optionsUrl, {}, token)
      .then(function (started) { return ceremony(button, started.options); })
      .then(function (credential) { return post(button.dataset.verifyUrl, verifyBody(button, credential), token); })
      .then(function (done) { window.location.assign(done.redirect); })
      .catch(function (error) {
        errorBox.textContent = explain(error);
        errorBox.hidden = false;
        button.disabled = false;
      });
  }

  function start() {
    var supported = window.PublicKeyCredential && navigator.credentials && window.fetch;
    document.querySelectorAll("button[data-passkey]").forEach(function (button) {
      if (!supported) {
        var note = document.getElementById("passkey-unsupported");
        if (note) { note.hidden = false; }
        return;
      }
      button.hidden = false;
      button.addEventListener("click", function () { run(button); });
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
