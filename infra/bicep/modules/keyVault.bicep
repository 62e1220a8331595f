// Key Vault for the worker's API keys (LEPTON_WORKER_AUTH=key). Access is Azure RBAC only (no
// access policies): the managed identity gets Key Vault Secrets User on this vault (roles.bicep),
// and the worker Container App reads the secret `worker-api-keys` through a Key Vault secret
// reference authenticated as that identity, so the key never appears in a template, a parameter or
// an app setting. Operators write the secret with their own Entra ID (Key Vault Secrets Officer).

@description('Azure region for the vault.')
param location string

@description('Globally unique vault name (3-24 letters, digits and hyphens).')
@minLength(3)
@maxLength(24)
param name string

@description('Purge protection: irreversible once on; a deleted vault then stays recoverable for 90 days.')
param purgeProtection bool = true

@description('Log Analytics workspace that receives the vault audit log.')
param workspaceName string

@description('Tags applied to every resource.')
param tags object

resource workspace 'Microsoft.OperationalInsights/workspaces@2025-02-01' existing = {
  name: workspaceName
}

resource vault 'Microsoft.KeyVault/vaults@2025-05-01' = {
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenant().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    // ARM refuses an explicit false; leaving it out is how purge protection stays off.
    enablePurgeProtection: purgeProtection ? true : null
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    // Container Apps without a VNet reads the secret over the public endpoint; every read still
    // needs an Entra ID token with a data role.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

// Who read or changed a secret, and whether access was denied.
resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspace.id
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output vaultUri string = vault.properties.vaultUri
