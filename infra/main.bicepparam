using 'main.bicep'

// Deployed with the command in docs/deploy.md; the region is that command's --location.

// The repository comes from the lab config that ships in the package, so the two cannot disagree.
var labConfig = loadJsonContent('../lab.config.json')
param githubOwner = labConfig.github.owner
param githubRepo = labConfig.github.repo

// Per installation, so they come from the deploy command's environment.
param namePrefix = readEnvironmentVariable('LAB_RESET_NAME_PREFIX', 'labreset')
param githubAppId = readEnvironmentVariable('LAB_RESET_GITHUB_APP_ID')
param githubAppInstallationId = readEnvironmentVariable('LAB_RESET_GITHUB_APP_INSTALLATION_ID')
param adminPrincipalId = readEnvironmentVariable('LAB_RESET_ADMIN_PRINCIPAL_ID', '')
// Optional (docs/deploy.md): who gets the alerts' e-mail, and the Entra app registration that
// puts the status page and admin routes behind sign-in. Empty: no e-mail; no sign-in.
param alertEmail = readEnvironmentVariable('LAB_RESET_ALERT_EMAIL', '')
param entraClientId = readEnvironmentVariable('LAB_RESET_ENTRA_CLIENT_ID', '')

// Edit here and run the deploy command again to change them.
param resetSchedule = '0 0 */6 * * *'
param githubApiUrl = 'https://api.github.com'
param oidcAudience = ''
param oidcIssuer = ''
param labConfigPath = 'lab.config.json'
param tablePrefix = 'labreset'
// Always-ready instances for the http functions: 1 answers webhook deliveries without a cold start
// (docs/deploy.md, "What an always-ready instance costs"); 0 for none.
param alwaysReadyHttp = 1
// The timer that redelivers failed webhook deliveries (REDELIVER_SCHEDULE, six fields, UTC).
param redeliverSchedule = '0 */5 * * * *'
// Other repositories whose runs may report (comma-separated owner/repo, e.g. when the lab's
// organisation runners serve them too); the lab repository is always allowed.
param allowedRepositories = ''
