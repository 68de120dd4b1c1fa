package onboard

import (
	"context"
	"fmt"
)

// Install installs the tester stack on the tester's VM and, once the cockpit
// URL responds, marks the tester ready and queues the welcome email. The step
// goes on when ctx ends, and its outcome is stored. It returns the tester,
// EConflict when the tester has no active deployment or a step running, and
// EInstallFailed when the install fails.
func (s *Service) Install(ctx context.Context, username string) (t *Tester, err error) {
	defer func() { s.audit(ctx, "tester.install", username, "", err, "") }()
	if _, err := s.store.FindTester(ctx, username); err != nil {
		return nil, err
	}
	unlock, err := s.lockTester(username, "Installing")
	if err != nil {
		return nil, err
	}
	err = s.runDetached(ctx, func(ctx context.Context) error {
		defer unlock()
		return s.install(ctx, s.newRun(username, StageInstalling, "", 0))
	})
	if err != nil {
		return nil, err
	}
	return s.store.FindTester(ctx, username)
}

// install runs the install step. A failure keeps the deployment for a retry
// and sends no email.
func (s *Service) install(ctx context.Context, run *stepRun) error {
	username := run.Username
	t, err := s.store.FindTester(ctx, username)
	if err != nil {
		return err
	}
	if t.Deployment.State != DeploymentActive {
		return Errorf(EConflict, "%s has no active deployment to install on. Provision it first.", username)
	}
	if err := s.store.SetInstallState(ctx, username, InstallInstalling, "", s.now()); err != nil {
		return err
	}

	stageCtx, cancel := s.stageContext(ctx, StageInstalling)
	defer cancel()
	req := InstallRequest{
		Username: username, NodeID: t.Deployment.NodeID, Gateway: t.Deployment.Gateway,
		VMAddress: t.Deployment.VMAddress, PasswordHash: t.PasswordHash, RunID: run.ID,
	}
	url, err := s.installer.Install(stageCtx, req, func(line string) { run.say("%s", line) })
	if err != nil {
		err = s.stepError(stageCtx, StageInstalling, EInstallFailed, err)
		state := InstallFailed
		if isShutdown(err) {
			// A restart decides whether this install finished.
			return err
		}
		if e := s.store.SetInstallState(context.WithoutCancel(ctx), username, state, ErrorMessage(err), s.now()); e != nil {
			s.log.Error("Install failure not recorded", "tester", username, "error", e)
		}
		s.log.Warn("Install failed", "tester", username, "run_id", run.ID, "code", ErrorCode(err), "error", err)
		return err
	}

	// A repeated install that ends at the same cockpit sends no second email.
	welcome := !(t.InstallState == InstallInstalled && t.CockpitURL == url)
	if err := s.markReady(context.WithoutCancel(ctx), t, url, welcome); err != nil {
		return err
	}
	run.say("Cockpit answers at %s", url)
	s.log.Info("Installed", "tester", username, "cockpit_url", url)
	return nil
}

// markReady stores the cockpit URL and, with welcome, queues the welcome
// email in the same transaction.
func (s *Service) markReady(ctx context.Context, t *Tester, cockpitURL string, welcome bool) error {
	var msg *Message
	if welcome {
		m := welcomeMessage(t, cockpitURL)
		m.Created = s.now()
		m.NextAt = m.Created
		msg = &m
	}
	if err := s.store.MarkInstalled(ctx, t.Username, cockpitURL, msg, s.now()); err != nil {
		return fmt.Errorf("mark %s installed: %w", t.Username, err)
	}
	if welcome {
		s.queueMail()
	}
	return nil
}

func welcomeMessage(t *Tester, cockpitURL string) Message {
	name := t.FullName
	if name == "" {
		name = t.Username
	}
	signIn := "the password your admin gave you"
	if t.Account == AccountExisting {
		signIn = "the password of your existing account"
	}
	body := fmt.Sprintf("Hello %s,\r\n\r\n"+
		"Your test environment is ready. Open your cockpit at:\r\n\r\n    %s\r\n\r\n"+
		"Sign in with your username, %s, and %s.\r\n",
		name, cockpitURL, t.Username, signIn)
	return Message{
		To: t.Email, ToName: t.FullName, Tester: t.Username, Status: MessagePending,
		Subject: "Your test environment is ready", Body: body,
	}
}
