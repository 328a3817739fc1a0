// The app's one storage account: Functions host storage (blob), the Flex deployment container,
// the queue that hands "look now" from the triggers to the queue-triggered reconcile (and the
// poison queue the Functions host moves failed messages to), and this app's tables. The deployment
// creates every table and queue, so the app never creates storage (LAB_STORAGE_PROVISIONED).
// Reached by managed identity only: shared keys and public blob access are off.

param location string
param storageAccountName string
param deploymentContainerName string
@description('The reconcile queue (RECONCILE_QUEUE); the Functions host moves a message that failed maxDequeueCount times to <name>-poison.')
param reconcileQueueName string
@description('Starts the app\'s table names (LAB_TABLE_PREFIX).')
param tablePrefix string
param tags object
@description('Object id of the admin who may clear a pair record (Storage Table Data Contributor); empty grants no one.')
param adminPrincipalId string = ''

// Every table the app opens (openTable under shared/storage), <prefix><suffix>: pair records,
// pair events, reconcile coverage, job facts, and the webhook redelivery bookkeeping.
var tableSuffixes = ['Pairs', 'Events', 'Control', 'Facts', 'Deliveries', 'History']

var storageTableDataContributor = subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3')

resource storage 'Microsoft.Storage/storageAccounts@2025-01-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    // Flex Consumption without a virtual network reaches its storage over the public endpoint.
    publicNetworkAccess: 'Enabled'
  }

  resource blobService 'blobServices' = {
    name: 'default'

    resource deploymentContainer 'containers' = {
      name: deploymentContainerName
      properties: { publicAccess: 'None' }
    }
  }

  resource tableService 'tableServices' = {
    name: 'default'

    resource tables 'tables' = [
      for suffix in tableSuffixes: {
        name: '${tablePrefix}${suffix}'
      }
    ]
  }

  resource queueService 'queueServices' = {
    name: 'default'

    resource reconcileQueue 'queues' = {
      name: reconcileQueueName
    }

    // Created here rather than by the host on the first failure, so it exists (and can be watched)
    // from the start.
    resource poisonQueue 'queues' = {
      name: '${reconcileQueueName}-poison'
    }
  }
}

// Shared keys are off, so the admin needs a data role to clear a pair that gave up (README, "What it decides").
resource adminTableData 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(adminPrincipalId)) {
  name: guid(storage.id, adminPrincipalId, storageTableDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: storageTableDataContributor
    principalId: adminPrincipalId
  }
}

output storageAccountName string = storage.name
output reconcileQueueName string = storage::queueService::reconcileQueue.name
output deploymentContainerUrl string = '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
