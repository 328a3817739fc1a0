// lab-reset in one deployment: the resource group, monitoring and its alerts, storage (with the
// app's tables and the reconcile queue), Key Vault and the Flex Consumption function app with its
// roles. Deploy with the command in docs/deploy.md.
targetScope = 'subscription'

import { allowedRepositoryList, alwaysReadyFor, namePrefixProblem } from 'modules/lib.bicep'

// Bicep has no regular expressions: the length is checked on the parameter, the characters by
// namePrefixProblem (modules/lib.bicep), and the deployment stops before creating anything.
@description('Starts every resource name: 3-12 lower-case letters (a-z) and digits (0-9), e.g. labreset; the storage account name st<prefix><8 characters> allows nothing else.')
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

@description('Prefix of the app\'s table names (LAB_TABLE_PREFIX): 3-41 letters and digits, starting with a letter.')
@minLength(3)
@maxLength(41)
param tablePrefix string = 'labreset'

@description('Six-field NCRONTAB schedule of the timer, UTC (RESET_SCHEDULE).')
param resetSchedule string = '0 0 */6 * * *'

@description('Audience that perf workflows request their GitHub Actions OIDC token for (OIDC_AUDIENCE); empty means api://<function app name>. The oidcAudience output gives the value in force.')
param oidcAudience string = ''

@description('Issuer of those tokens (OIDC_ISSUER); empty means GitHub.com\'s. For GitHub Enterprise Server https://HOST/_services/token.')
param oidcIssuer string = ''

@description('Object id of the lab admin: Key Vault Secrets Officer (to put the secrets in) and Storage Table Data Contributor (to clear a pair that gave up); empty grants no one.')
param adminPrincipalId string = ''

@description('Comma-separated owner/repo list of the other repositories whose runs may report to lab-reset (OIDC tokens and webhook deliveries), e.g. organisation runners shared with them; empty: only the lab repository. The lab repository is always allowed (ALLOWED_REPOSITORIES).')
param allowedRepositories string = ''

@description('E-mail address (e.g. a distribution list) of the action group every alert notifies; empty: no action group, and the alerts notify no one.')
param alertEmail string = ''

@description('Client id of the Microsoft Entra app registration that signs people in to the status page and admin routes (App Service authentication); empty: sign-in off.')
param entraClientId string = ''

@description('Always-ready instances for the http functions (webhook, job-completed, status page): 1 answers GitHub\'s deliveries without a cold start; 0: none (scale from zero, no baseline cost). docs/deploy.md says what one costs.')
@minValue(0)
@maxValue(10)
param alwaysReadyHttp int = 1

@description('Six-field NCRONTAB schedule, UTC, of the timer that redelivers failed webhook deliveries with App authentication (REDELIVER_SCHEDULE); the app\'s default is every 5 minutes.')
@minLength(1)
param redeliverSchedule string = '0 */5 * * * *'

@description('Tags on every resource.')
param tags object = {}

var allTags = union(tags, { app: 'lab-reset', labRepository: '${githubOwner}/${githubRepo}' })

var prefixProblem = namePrefixProblem(namePrefix)

resource resourceGroup 'Microsoft.Resources/resourceGroups@2025-04-01' = {
  // An unusable prefix stops the deployment here, with this message, before anything exists.
  name: empty(prefixProblem) ? resourceGroupName : fail('namePrefix \'${namePrefix}\' ${prefixProblem}: use 3-12 lower-case letters (a-z) and digits (0-9), e.g. labreset (LAB_RESET_NAME_PREFIX).')
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
  actionGroup: 'ag-${namePrefix}-${suffix}'
  alertRules: 'alert-${namePrefix}-${suffix}'
  deploymentContainer: 'app-package'
  // The app's default for RECONCILE_QUEUE; the host moves failed messages to <name>-poison.
  reconcileQueue: 'lab-reset-reconcile'
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
    reconcileQueueName: names.reconcileQueue
    tablePrefix: tablePrefix
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
    allowedRepositories: allowedRepositoryList('${githubOwner}/${githubRepo}', allowedRepositories)
    reconcileQueueName: storage.outputs.reconcileQueueName
    entraClientId: entraClientId
    alwaysReady: alwaysReadyFor(alwaysReadyHttp)
    redeliverSchedule: redeliverSchedule
    tags: allTags
  }
}

module alerts 'modules/alerts.bicep' = {
  scope: resourceGroup
  params: {
    location: location
    appInsightsName: monitoring.outputs.appInsightsName
    ruleNamePrefix: names.alertRules
    actionGroupName: names.actionGroup
    alertEmail: alertEmail
    tags: allTags
  }
}

output resourceGroupName string = resourceGroup.name
output functionAppName string = functionApp.outputs.functionAppName
output baseUrl string = functionApp.outputs.baseUrl
output keyVaultName string = keyVault.outputs.keyVaultName
output oidcAudience string = audience
