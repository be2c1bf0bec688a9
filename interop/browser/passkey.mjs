// Signs in to idplane as a person would, in a real Chromium with a virtual
// authenticator (Chrome DevTools WebAuthn domain): password, add a passkey on
// /account, sign out, sign in with the passkey alone. Exits non-zero on any
// failure. Usage: node passkey.mjs BASE_URL USERNAME PASSWORD [SCREENSHOT_DIR]
import { chromium } from "playwright-core";

const [base, username, password, shots] = process.argv.slice(2);
if (!password) {
  console.error("usage: node passkey.mjs BASE_URL USERNAME PASSWORD [SCREENSHOT_DIR]");
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const violations = [];
try {
  const page = await browser.newPage();
  page.on("console", (m) => { if (/Content Security Policy|Refused/.test(m.text())) violations.push(m.text()); });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: { protocol: "ctap2", transport: "internal", hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true },
  });

  await page.goto(`${base}/login`);
  await page.getByLabel("Username").fill(username);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in", exact: true }).click();
  await page.waitForURL(`${base}/account`);
  console.log("signed in with a password");

  await page.getByLabel("Passkey name").fill("virtual authenticator");
  await page.getByRole("button", { name: "Add a passkey" }).click();
  await page.getByRole("cell", { name: "virtual authenticator" }).waitFor();
  console.log("added a passkey");
  if (shots) await page.screenshot({ path: `${shots}/account.png`, fullPage: true });

  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(`${base}/login`);
  await page.getByRole("button", { name: "Sign in with a passkey" }).click();
  await page.waitForURL(`${base}/account`);
  const body = await page.textContent("body");
  if (!body.includes("urn:idplane:acr:phr")) throw new Error("the passkey session is not phishing-resistant");
  console.log("signed in with the passkey alone (phishing-resistant)");
  if (violations.length) throw new Error(`CSP violations: ${violations.join("; ")}`);
  console.log("no CSP violations");
} finally {
  await browser.close();
}
