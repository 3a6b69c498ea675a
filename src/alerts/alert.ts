/** What an alert is (SPEC section 7), apart from the store that keeps them and the sinks that send them. */

export type AlertType =
  | 'ShareCapacity'
  | 'ShareConnectivity'
  | 'SharePath'
  | 'ShareAuthentication'
  | 'BackupGeneral'
  | 'CertificateExpiring'
  | 'BackupOverdue';

export const shareAlertTypes: readonly AlertType[] = ['ShareCapacity', 'ShareConnectivity', 'SharePath', 'ShareAuthentication'];

export interface Alert {
  Id: string;
  AlertType: AlertType;
  Severity: 'Critical' | 'Warning';
  Title: string;
  Description: string;
  Remediation: string[];
  Status: 'Active' | 'Closed';
  FirstSeen: string;
  LastSeen: string;
  ClosedTime: string | null;
  BackupName: string | null;
  /** Why the last sending of it to a sink (command, webhook) failed; null once one succeeds. */
  DeliveryError?: string | null;
}
