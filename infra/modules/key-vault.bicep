// Key Vault for the GitHub App private key and the webhook secret. RBAC only (no access policies);
// the admin puts the secrets in after deployment (docs/deploy.md), the app reads them through
// Key Vault references in its app settings.

param location string
param keyVaultName string
@description('Object id of the admin who sets the secrets (Key Vault Secrets Officer); empty grants no one.')
param adminPrincipalId string
param tags object

var keyVaultSecretsOfficer = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')

resource keyVault 'Microsoft.KeyVault/vaults@2026-02-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource adminSecretsOfficer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(adminPrincipalId)) {
  name: guid(keyVault.id, adminPrincipalId, keyVaultSecretsOfficer)
  scope: keyVault
  properties: {
    roleDefinitionId: keyVaultSecretsOfficer
    principalId: adminPrincipalId
  }
}

output keyVaultName string = keyVault.name
