// The Flex Consumption (FC1, Linux) function app on Node.js 22 with a system-assigned identity, and
// the only roles that identity gets: exactly what the app uses, each scoped to one resource.

param location string
param planName string
param functionAppName string
param storageAccountName string
param deploymentContainerUrl string
param appInsightsName string
param keyVaultName string
param githubApiUrl string
param githubAppId string
param githubAppInstallationId string
param labConfigPath string
param tablePrefix string
param resetSchedule string
param oidcAudience string
@description('Empty: the app\'s default, GitHub.com\'s issuer.')
param oidcIssuer string
param allowedRepositories string
param tags object

// Names of the secrets in Key Vault; docs/deploy.md tells the admin to create them.
var githubAppPrivateKeySecret = 'github-app-private-key'
var githubWebhookSecret = 'github-webhook-secret'

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' existing = {
  name: storageAccountName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource keyVault 'Microsoft.KeyVault/vaults@2026-02-01' existing = {
  name: keyVaultName
}

resource plan 'Microsoft.Web/serverfarms@2025-03-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource functionApp 'Microsoft.Web/sites@2025-03-01' = {
  name: functionAppName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: { type: 'SystemAssigned' }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      // Storage and telemetry by identity, secrets by Key Vault reference, nothing else secret.
      // FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION are not set: Flex takes the runtime
      // from functionAppConfig.
      appSettings: [
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'Authorization=AAD' }
        { name: 'GITHUB_API_URL', value: githubApiUrl }
        { name: 'GITHUB_APP_ID', value: githubAppId }
        { name: 'GITHUB_APP_INSTALLATION_ID', value: githubAppInstallationId }
        { name: 'GITHUB_APP_PRIVATE_KEY', value: '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName=${githubAppPrivateKeySecret})' }
        { name: 'GITHUB_WEBHOOK_SECRET', value: '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName=${githubWebhookSecret})' }
        { name: 'LAB_CONFIG_PATH', value: labConfigPath }
        { name: 'LAB_TABLE_PREFIX', value: tablePrefix }
        { name: 'RESET_SCHEDULE', value: resetSchedule }
        { name: 'OIDC_AUDIENCE', value: oidcAudience }
        { name: 'OIDC_ISSUER', value: oidcIssuer }
        { name: 'ALLOWED_REPOSITORIES', value: allowedRepositories }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: { type: 'SystemAssignedIdentity' }
        }
      }
      runtime: { name: 'node', version: '22' }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 512 }
    }
  }
}

// No basic-auth publishing: deployments authenticate with Entra ID.
resource ftpBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: functionApp
  name: 'ftp'
  properties: { allow: false }
}

resource scmBasicAuth 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2025-03-01' = {
  parent: functionApp
  name: 'scm'
  properties: { allow: false }
}

// Host storage (leases, keys) and the deployment container.
resource blobDataOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageBlobDataOwner)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Pair records and events.
resource tableDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageTableDataContributor)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Telemetry with Entra auth (APPLICATIONINSIGHTS_AUTHENTICATION_STRING).
resource metricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, functionApp.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

// Resolving the Key Vault references above.
resource secretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(keyVault.id, functionApp.id, roles.keyVaultSecretsUser)
  scope: keyVault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
    principalId: functionApp.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output functionAppName string = functionApp.name
output baseUrl string = 'https://${functionApp.properties.defaultHostName}'
