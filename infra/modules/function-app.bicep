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
@description('Comma-separated owner/repo list (ALLOWED_REPOSITORIES).')
param allowedRepositories string
@description('The queue the triggers hand "look now" to (RECONCILE_QUEUE); created in the storage account.')
param reconcileQueueName string
@description('Client id of the Entra app registration for App Service authentication; empty: off.')
param entraClientId string
@description('functionAppConfig.scaleAndConcurrency.alwaysReady (alwaysReadyFor in lib.bicep); empty: none, and the first request after an idle spell waits for a cold start.')
param alwaysReady array
@description('Six-field NCRONTAB schedule of the timer that redelivers failed webhook deliveries (REDELIVER_SCHEDULE).')
param redeliverSchedule string
param tags object

// Names of the secrets in Key Vault; docs/deploy.md (step 3) tells the admin to create them, and
// test/infra.test.ts checks that the docs use these names.
var githubAppPrivateKeySecret = 'github-app-private-key'
var githubWebhookSecret = 'github-webhook-secret'

var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
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
    // Only properties Flex Consumption accepts: it refuses ftpsState, alwaysOn, linuxFxVersion and
    // the other plan-level ones (error 51021; test/infra.test.ts lists them). FTP is off through
    // the publishing-credentials policies below instead.
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      // Storage and telemetry by identity, secrets by Key Vault reference, nothing else secret.
      // FUNCTIONS_WORKER_RUNTIME / FUNCTIONS_EXTENSION_VERSION are not set: Flex takes the runtime
      // from functionAppConfig.
      appSettings: [
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        // The queue trigger and the app's sender; from the account's own endpoints, so no cloud's
        // DNS suffix is written here.
        { name: 'AzureWebJobsStorage__queueServiceUri', value: storage.properties.primaryEndpoints.queue }
        { name: 'RECONCILE_QUEUE', value: reconcileQueueName }
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
        // The deployment creates the tables and queues (modules/storage.bicep), so no trigger spends
        // its first call creating them, and a missing one is a deployment to run, not a table to make.
        { name: 'LAB_STORAGE_PROVISIONED', value: 'true' }
        { name: 'REDELIVER_SCHEDULE', value: redeliverSchedule }
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
      // An always-ready instance answers a webhook delivery without a cold start, well inside
      // GitHub's 10-second timeout; docs/deploy.md says what it costs.
      scaleAndConcurrency: {
        maximumInstanceCount: 40
        instanceMemoryMB: 512
        alwaysReady: alwaysReady
      }
    }
  }
}

// No basic-auth publishing, FTP included (Flex takes no ftpsState): deployments authenticate
// with Entra ID.
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

// App Service authentication (Easy Auth) with Microsoft Entra: a person signs in before any route
// but the machine routes, which prove their caller themselves (an OIDC token or the webhook's
// HMAC) and which GitHub calls without a browser. docs/deploy.md, "Put the status page and admin
// routes behind Entra sign-in", creates the app registration. No client secret: the sign-in uses
// the ID token, which the registration must be allowed to issue.
resource authSettings 'Microsoft.Web/sites/config@2025-03-01' = if (!empty(entraClientId)) {
  parent: functionApp
  name: 'authsettingsV2'
  properties: {
    platform: { enabled: true }
    globalValidation: {
      requireAuthentication: true
      unauthenticatedClientAction: 'RedirectToLoginPage'
      redirectToProvider: 'azureactivedirectory'
      // The host's admin API (/admin/…) keeps needing the master key, which only holders of
      // Azure rights on the app can read.
      excludedPaths: ['/api/job-completed', '/api/github-webhook', '/admin/*']
    }
    identityProviders: {
      azureActiveDirectory: {
        enabled: true
        registration: {
          clientId: entraClientId
          openIdIssuer: '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'
        }
        // The CLI's bearer token (scope api://<client id>/.default): a v2 token's audience is the
        // client id, always allowed; a v1 token's is the App ID URI.
        validation: { allowedAudiences: ['api://${entraClientId}'] }
      }
    }
    login: {
      // Nothing reads the users' tokens; the session cookie is enough.
      tokenStore: { enabled: false }
    }
    httpSettings: { requireHttps: true }
  }
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

// The reconcile queue: the triggers send to it, the queue trigger reads and deletes, and the host
// moves failed messages to the poison queue.
resource queueDataContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(storage.id, functionApp.id, roles.storageQueueDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
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
