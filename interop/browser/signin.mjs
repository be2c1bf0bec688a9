// Walks idplane's sign-in story as a new person would, in a real Chromium:
// two browser contexts, one with JavaScript turned off (every form but the
// passkey ones must work without script), one with a virtual authenticator
// (Chrome DevTools WebAuthn domain). Exits non-zero on any failure.
//
//   no-script context: a wrong password is refused; password sign-in; TOTP
//     set-up from the key on the page (code computed here, RFC 6238); ten
//     recovery codes; sign out; password, then the code already used at
//     set-up is refused as a replay, then a recovery code signs in (mfa).
//   passkey context: password, then the used recovery code is refused, then
//     a fresh TOTP code (mfa, after the set-up's time step); add a named
//     passkey; sign out; sign in with the passkey alone, no username (phr).
//   no-script context: /account lists both sessions; end the other one; the
//     passkey context's next page load lands on /login.
//   Both: no CSP violation or script error on any page.
//
// Usage: node signin.mjs BASE_URL USERNAME PASSWORD [SCREENSHOT_DIR]
import { createHmac } from "node:crypto";
import { chromium } from "playwright-core";

const [base, username, password, shots] = process.argv.slice(2);
if (!password) {
  console.error("usage: node signin.mjs BASE_URL USERNAME PASSWORD [SCREENSHOT_DIR]");
  process.exit(2);
}

// RFC 6238 with the parameters idplane uses: HMAC-SHA-1, 6 digits, 30 s.
const STEP = 30;
const stepNow = () => Math.floor(Date.now() / 1000 / STEP);
function base32(text) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = "";
  for (const c of text.replace(/[\s=]/g, "").toUpperCase()) {
    const v = alphabet.indexOf(c);
    if (v < 0) throw new Error(`not base32: ${text}`);
    bits += v.toString(2).padStart(5, "0");
  }
  const bytes = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) bytes.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(bytes);
}
function totp(secret, step) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac("sha1", secret).update(counter).digest();
  const at = mac[mac.length - 1] & 0x0f;
  const n = (mac.readUInt32BE(at) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, "0");
}
if (totp(Buffer.from("12345678901234567890"), Math.floor(59 / 30)) !== "287082") {
  throw new Error("the test's own TOTP generator is wrong (RFC 6238 vector)");
}

const check = (ok, what) => { if (!ok) throw new Error(what); };
const step = (text) => console.log(`ok - ${text}`);
const shot = async (page, name) => { if (shots) await page.screenshot({ path: `${shots}/${name}.png`, fullPage: true }); };
const problems = [];
function watch(page, label) {
  page.on("console", (m) => {
    if (/Content Security Policy|Refused/.test(m.text())) problems.push(`${label}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`${label}: script error: ${e.message}`));
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  // --- The no-script context. ---
  const plain = await (await browser.newContext({ javaScriptEnabled: false })).newPage();
  watch(plain, "no-script");
  const signInWithPassword = async (page, secret) => {
    await page.goto(`${base}/login`);
    await page.getByLabel("Username").fill(username);
    await page.getByLabel("Password").fill(secret);
    await page.getByRole("button", { name: "Sign in", exact: true }).click();
    await page.waitForLoadState();
  };
  const acr = async (page) => (await page.locator("dt", { hasText: "This session" }).locator("+ dd").textContent()).trim();

  // Script really is off here: the passkey button does nothing.
  await plain.goto(`${base}/login`);
  await plain.getByRole("button", { name: "Sign in with a passkey" }).click();
  check((await plain.locator("#passkey-status").textContent()) === "", "script runs in the no-script context");

  await signInWithPassword(plain, `${password} but wrong`);
  check(plain.url().startsWith(`${base}/login`), `a wrong password left /login for ${plain.url()}`);
  await plain.getByRole("alert").filter({ hasText: "Wrong username or password." }).waitFor();
  step("a wrong password is refused");
  await shot(plain, "01-wrong-password");

  await signInWithPassword(plain, password);
  await plain.waitForURL(`${base}/account`);
  check((await acr(plain)).startsWith("urn:idplane:acr:1fa"), `password session: ${await acr(plain)}`);
  step("signed in with the password (no script)");

  await plain.getByRole("button", { name: "Set up an authenticator app" }).click();
  await plain.getByRole("heading", { name: "Set up an authenticator app" }).waitFor();
  check(await plain.locator("figure.qr svg").count() === 1, "no QR code on the set-up page");
  const secret = base32((await plain.locator("p", { hasText: "Key:" }).locator("code").textContent()).trim());
  check(secret.length === 20, `a ${secret.length}-byte TOTP secret`);
  await shot(plain, "02-totp-setup");
  const enrolledStep = stepNow();
  const enrolledCode = totp(secret, enrolledStep);
  await plain.getByLabel("Code").fill(enrolledCode);
  await plain.getByRole("button", { name: "Confirm" }).click();
  await plain.getByRole("heading", { name: "Your recovery codes" }).waitFor();
  const recovery = (await plain.locator("ul.codes li code").allTextContents()).map((c) => c.trim());
  check(recovery.length === 10, `${recovery.length} recovery codes shown, not ten`);
  check(new Set(recovery).size === 10, "the recovery codes are not all different");
  step(`enrolled TOTP with a computed code; ten recovery codes shown`);
  await shot(plain, "03-recovery-codes");
  await plain.getByRole("link", { name: "Back to your account" }).click();
  await plain.getByText("An authenticator app is set up. Recovery codes left: 10.").waitFor();

  await plain.getByRole("button", { name: "Sign out" }).click();
  await plain.waitForURL(`${base}/login`);
  step("signed out (no script)");

  await signInWithPassword(plain, password);
  await plain.waitForURL(/\/login\/second-factor/);
  await plain.getByLabel("Code", { exact: true }).fill(enrolledCode);
  await plain.getByRole("button", { name: "Continue" }).first().click();
  await plain.getByRole("alert").filter({ hasText: "That code did not work." }).waitFor();
  check(plain.url().startsWith(`${base}/login/second-factor`), `a replayed code led to ${plain.url()}`);
  step("password accepted; the code already used at set-up is refused as a replay");
  await shot(plain, "04-replay-refused");
  await plain.getByText("Use a recovery code instead").click();
  await plain.getByLabel("Recovery code").fill(recovery[0]);
  await plain.locator("form", { has: plain.getByLabel("Recovery code") }).getByRole("button", { name: "Continue" }).click();
  await plain.waitForURL(`${base}/account`);
  check((await acr(plain)).startsWith("urn:idplane:acr:mfa"), `recovery-code session: ${await acr(plain)}`);
  await plain.getByText("Recovery codes left: 9.").waitFor();
  step("signed in with password and a recovery code (mfa); nine left");

  // --- The passkey context. ---
  const keyed = await (await browser.newContext()).newPage();
  watch(keyed, "passkey");
  const cdp = await keyed.context().newCDPSession(keyed);
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });

  await signInWithPassword(keyed, password);
  await keyed.waitForURL(/\/login\/second-factor/);
  await keyed.getByText("Use a recovery code instead").click();
  await keyed.getByLabel("Recovery code").fill(recovery[0]);
  await keyed.locator("form", { has: keyed.getByLabel("Recovery code") }).getByRole("button", { name: "Continue" }).click();
  await keyed.getByRole("alert").filter({ hasText: "That code did not work." }).waitFor();
  check(keyed.url().startsWith(`${base}/login/second-factor`), `a used recovery code led to ${keyed.url()}`);
  step("second context: password accepted; the recovery code already used is refused");
  // A fresh code: the one an app shows once the set-up's step has passed.
  while (stepNow() <= enrolledStep) await new Promise((r) => setTimeout(r, 500));
  await keyed.getByLabel("Code", { exact: true }).fill(totp(secret, stepNow()));
  await keyed.getByRole("button", { name: "Continue" }).first().click();
  await keyed.waitForURL(`${base}/account`);
  check((await acr(keyed)).startsWith("urn:idplane:acr:mfa"), `TOTP session: ${await acr(keyed)}`);
  step("signed in with password and a fresh TOTP code (mfa), second context");

  await keyed.getByLabel("Passkey name").fill("virtual authenticator");
  await keyed.getByRole("button", { name: "Add a passkey" }).click();
  await keyed.getByRole("cell", { name: "virtual authenticator" }).waitFor();
  step("added a passkey named \"virtual authenticator\"");
  await keyed.getByRole("button", { name: "Sign out" }).click();
  await keyed.waitForURL(`${base}/login`);

  await keyed.getByRole("button", { name: "Sign in with a passkey" }).click();
  await keyed.waitForURL(`${base}/account`);
  const phr = await acr(keyed);
  check(phr.startsWith("urn:idplane:acr:phr"), `the passkey session is not phishing-resistant: ${phr}`);
  step(`signed out, then signed in with the passkey alone: ${phr}`);
  await shot(keyed, "05-account-passkey");

  // --- Sessions, from the no-script context. ---
  await plain.goto(`${base}/account`);
  const rows = plain.locator("section", { has: plain.getByRole("heading", { name: "Sessions" }) }).locator("tbody tr");
  check(await rows.count() === 2, `${await rows.count()} sessions listed, not two`);
  const others = rows.filter({ hasNotText: "(this one)" });
  check(await others.count() === 1, "not exactly one other session");
  await shot(plain, "06-sessions");
  const listed = [];
  for (const row of await rows.all()) listed.push((await row.locator("td").allTextContents()).map((t) => t.trim()).filter(Boolean).join(", "));
  step(`both sessions listed: ${listed.join(" | ")}`);
  await others.getByRole("button", { name: "End" }).click();
  await plain.getByText("The session was ended.").waitFor();
  check(await rows.count() === 1, "the ended session is still listed");
  await keyed.reload();
  check(keyed.url() === `${base}/login`, `the ended session still reaches ${keyed.url()}`);
  step("ended the other session; its next page load goes to /login");

  await plain.getByRole("button", { name: "Sign out" }).click();
  await plain.waitForURL(`${base}/login`);

  check(problems.length === 0, `CSP violations or script errors: ${problems.join("; ")}`);
  step("no CSP violation or script error on any page");
} finally {
  await browser.close();
}
