// lab-reset in one deployment: the resource group, monitoring, storage, Key Vault and the Flex
// Consumption function app with its roles. Deploy with the command in docs/deploy.md.
targetScope = 'subscription'

@description('Starts every resource name: 3-12 lowercase letters and digits, e.g. labreset.')
@minLength(3)
@maxLength(12)
param namePrefix string

@description('Region of every resource; one that offers Flex Consumption (az functionapp list-flexconsumption-locations).')
param location string = deployment().location

@description('Resource group to create or update.')
param resourceGroupName string = 'rg-${namePrefix}'

@description('GitHub REST API base URL; for GitHub Enterprise Server https://HOST/api/v3.')
param githubApiUrl string = 'https://api.github.com'

@description('Owner of the lab repository (lab.config.json github.owner).')
param githubOwner string

@description('Name of the lab repository (lab.config.json github.repo).')
param githubRepo string

@description('The GitHub App\'s numeric id.')
@minLength(1)
param githubAppId string

@description('The numeric id of the GitHub App\'s installation on the lab repository or organisation.')
@minLength(1)
param githubAppInstallationId string

@description('The lab config file inside the deployed package (LAB_CONFIG_PATH); the lab config itself ships in the package.')
param labConfigPath string = 'lab.config.json'

@description('Prefix of the app\'s two table names (LAB_TABLE_PREFIX).')
param tablePrefix string = 'labreset'

@description('Six-field NCRONTAB schedule of the timer, UTC (RESET_SCHEDULE).')
param resetSchedule string = '0 0 */6 * * *'

@description('Audience that perf workflows request their GitHub Actions OIDC token for (OIDC_AUDIENCE); empty means api://<function app name>. The oidcAudience output gives the value in force.')
param oidcAudience string = ''

@description('Issuer of those tokens (OIDC_ISSUER); empty means GitHub.com\'s. For GitHub Enterprise Server https://HOST/_services/token.')
param oidcIssuer string = ''

@description('Object id of the lab admin: Key Vault Secrets Officer (to put the secrets in) and Storage Table Data Contributor (to clear a pair that gave up); empty grants no one.')
param adminPrincipalId string = ''

@description('Tags on every resource.')
param tags object = {}

var allTags = union(tags, { app: 'lab-reset', labRepository: '${githubOwner}/${githubRepo}' })

resource resourceGroup 'Microsoft.Resources/resourceGroups@2025-04-01' = {
  name: resourceGroupName
  location: location
  tags: allTags
}

// Same names on every redeployment of the same prefix into the same resource group.
var suffix = take(uniqueString(resourceGroup.id), 8)
var names = {
  storage: 'st${namePrefix}${suffix}'
  keyVault: 'kv-${namePrefix}-${suffix}'
  logAnalytics: 'log-${namePrefix}-${suffix}'
  appInsights: 'appi-${namePrefix}-${suffix}'
  plan: 'asp-${namePrefix}-${suffix}'
  functionApp: 'func-${namePrefix}-${suffix}'
  deploymentContainer: 'app-package'
}
var audience = empty(oidcAudience) ? 'api://${names.functionApp}' : oidcAudience

module monitoring 'modules/monitoring.bicep' = {
  scope: resourceGroup
  params: {
    location: location
    logAnalyticsName: names.logAnalytics
    appInsightsName: names.appInsights
    tags: allTags
  }
}

module storage 'modules/storage.bicep' = {
  scope: resourceGroup
  params: {
    location: location
    storageAccountName: names.storage
    deploymentContainerName: names.deploymentContainer
    adminPrincipalId: adminPrincipalId
    tags: allTags
  }
}

module keyVault 'modules/key-vault.bicep' = {
  scope: resourceGroup
  params: {
    location: location
    keyVaultName: names.keyVault
    adminPrincipalId: adminPrincipalId
    tags: allTags
  }
}

module functionApp 'modules/function-app.bicep' = {
  scope: resourceGroup
  params: {
    location: location
    planName: names.plan
    functionAppName: names.functionApp
    storageAccountName: storage.outputs.storageAccountName
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    appInsightsName: monitoring.outputs.appInsightsName
    keyVaultName: keyVault.outputs.keyVaultName
    githubApiUrl: githubApiUrl
    githubAppId: githubAppId
    githubAppInstallationId: githubAppInstallationId
    labConfigPath: labConfigPath
    tablePrefix: tablePrefix
    resetSchedule: resetSchedule
    oidcAudience: audience
    oidcIssuer: oidcIssuer
    allowedRepositories: '${githubOwner}/${githubRepo}'
    tags: allTags
  }
}

output resourceGroupName string = resourceGroup.name
output functionAppName string = functionApp.outputs.functionAppName
output baseUrl string = functionApp.outputs.baseUrl
output keyVaultName string = keyVault.outputs.keyVaultName
output oidcAudience string = audience
