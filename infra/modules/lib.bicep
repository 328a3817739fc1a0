// Rules main.bicep applies to its parameters, in one place and exported, so that
// test/infra.test.ts can evaluate them through the Bicep CLI (bicep build-params).

@export()
@description('Why namePrefix cannot be used, or empty when it can. Every resource name starts with it, and the storage account name (st<prefix><8 characters>) allows only 3-24 lower-case letters and digits, so the prefix is 3-12 lower-case letters (a-z) and digits (0-9).')
func namePrefixProblem(prefix string) string =>
  length(prefix) < 3 || length(prefix) > 12
    ? 'is ${length(prefix)} characters long, not 3-12'
    : empty(filter(range(0, length(prefix)), i => !contains('abcdefghijklmnopqrstuvwxyz0123456789', substring(prefix, i, 1))))
        ? ''
        : 'holds a character other than the lower-case letters a-z and the digits 0-9'

@export()
@description('ALLOWED_REPOSITORIES: the lab repository first (its own reset runs report to lab-reset), then the other comma-separated owner/repo entries, trimmed, each once.')
func allowedRepositoryList(labRepository string, others string) string =>
  join(union([labRepository], filter(map(split(others, ','), repository => trim(repository)), repository => !empty(repository))), ',')

@export()
@description('functionAppConfig.scaleAndConcurrency.alwaysReady for this many always-ready instances of the http group (the webhook, job-completed, the status page and admin routes); 0: none.')
func alwaysReadyFor(httpInstances int) array => httpInstances > 0 ? [{ name: 'http', instanceCount: httpInstances }] : []
